//! What a line of standard input means.

use zeroize::Zeroizing;

/// One line of input.
#[derive(PartialEq, Eq)]
pub enum Input {
    /// Nothing to do (an empty line).
    Nothing,
    /// A group message.
    Group(String),
    /// `/msg NICK TEXT`.
    Private { nick: String, text: String },
    /// `/who`.
    Who,
    /// `/fingerprint [NICK]`.
    Fingerprint(Option<String>),
    /// `/verify NICK`.
    Verify(String),
    /// `/unverify NICK`.
    Unverify(String),
    /// `/ask NICK QUESTION? ANSWER`.
    Ask {
        nick: String,
        question: Option<String>,
        answer: Zeroizing<String>,
    },
    /// `/answer NICK ANSWER`.
    Answer {
        nick: String,
        answer: Zeroizing<String>,
    },
    /// `/leave` (or `/quit`).
    Leave,
    /// `/help`.
    Help,
    /// `/invite`: the invite links to this room.
    Invite,
    /// `/retry`: while reconnecting, try at once instead of waiting out the delay.
    Retry,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Texts and answers stay out of debug output.
        let name = match self {
            Self::Nothing => "Nothing",
            Self::Group(_) => "Group",
            Self::Private { .. } => "Private",
            Self::Who => "Who",
            Self::Fingerprint(_) => "Fingerprint",
            Self::Verify(_) => "Verify",
            Self::Unverify(_) => "Unverify",
            Self::Ask { .. } => "Ask",
            Self::Answer { .. } => "Answer",
            Self::Leave => "Leave",
            Self::Help => "Help",
            Self::Invite => "Invite",
            Self::Retry => "Retry",
        };
        f.write_str(name)
    }
}

/// The help text for `/help`.
pub const HELP: &str = "\
A plain line is a message to the room. Commands:
  /msg NICK TEXT             private message to NICK
  /who                       members, fingerprints and verification
  /fingerprint [NICK]        your fingerprint, or NICK's and your safety number with NICK
  /verify NICK               mark NICK verified (after comparing fingerprints)
  /unverify NICK             take the mark away
  /ask NICK QUESTION? ANSWER ask NICK a secret question only they can answer
  /answer NICK ANSWER        answer NICK's secret question
  /invite                    the link that invites a friend to this room
  /retry                     while reconnecting: try again now instead of waiting
  /leave                     leave the room and quit
Nicknames with spaces go in double quotes: /msg \"Ada L\" hello
A line starting with // sends the rest, starting with one /, as a message.";

/// Parses one line. Errors are for the person, and carry no text.
pub fn parse(line: &str) -> Result<Input, &'static str> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Input::Group(format!("/{rest}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Group(line.to_owned()));
    };
    let (name, rest) = split_word(command);
    match name {
        "msg" => {
            let (nick, text) = take_nick(rest).ok_or("usage: /msg NICK TEXT")?;
            if text.trim().is_empty() {
                return Err("usage: /msg NICK TEXT");
            }
            Ok(Input::Private {
                nick,
                text: text.to_owned(),
            })
        }
        "who" => Ok(Input::Who),
        "retry" => Ok(Input::Retry),
        "fingerprint" | "fp" => Ok(Input::Fingerprint(take_nick(rest).map(|(n, _)| n))),
        "verify" => Ok(Input::Verify(
            take_nick(rest).ok_or("usage: /verify NICK")?.0,
        )),
        "unverify" => Ok(Input::Unverify(
            take_nick(rest).ok_or("usage: /unverify NICK")?.0,
        )),
        "ask" => {
            let (nick, rest) = take_nick(rest).ok_or("usage: /ask NICK QUESTION? ANSWER")?;
            let (question, answer) = match rest.find('?') {
                Some(end) => (
                    Some(rest.get(..=end).unwrap_or_default().trim().to_owned()),
                    rest.get(end + 1..).unwrap_or_default().trim(),
                ),
                None => (None, rest.trim()),
            };
            if answer.is_empty() {
                return Err("usage: /ask NICK QUESTION? ANSWER (the answer is missing)");
            }
            Ok(Input::Ask {
                nick,
                question,
                answer: Zeroizing::new(answer.to_owned()),
            })
        }
        "answer" => {
            let (nick, rest) = take_nick(rest).ok_or("usage: /answer NICK ANSWER")?;
            if rest.trim().is_empty() {
                return Err("usage: /answer NICK ANSWER");
            }
            Ok(Input::Answer {
                nick,
                answer: Zeroizing::new(rest.trim().to_owned()),
            })
        }
        "leave" | "quit" | "exit" => Ok(Input::Leave),
        "help" | "?" => Ok(Input::Help),
        "invite" => Ok(Input::Invite),
        _ => Err("unknown command (try /help; start a message with // to send a /)"),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (
            s.get(..i).unwrap_or(s),
            s.get(i..).unwrap_or("").trim_start(),
        ),
        None => (s, ""),
    }
}

/// A nickname (a word, or a double-quoted string) and the rest.
fn take_nick(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(quoted) = s.strip_prefix('"') {
        let end = quoted.find('"')?;
        let nick = quoted.get(..end)?.to_owned();
        let rest = quoted.get(end + 1..)?.trim_start();
        return (!nick.trim().is_empty()).then_some((nick, rest));
    }
    let (word, rest) = split_word(s);
    (!word.is_empty()).then(|| (word.to_owned(), rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(parse("hello").unwrap(), Input::Group("hello".into()));
        assert_eq!(parse("  ").unwrap(), Input::Nothing);
        assert_eq!(parse("//etc").unwrap(), Input::Group("/etc".into()));
        assert_eq!(
            parse("/msg bob hi there").unwrap(),
            Input::Private {
                nick: "bob".into(),
                text: "hi there".into()
            }
        );
        assert_eq!(
            parse("/msg \"Ada L\" hi").unwrap(),
            Input::Private {
                nick: "Ada L".into(),
                text: "hi".into()
            }
        );
        assert_eq!(parse("/who").unwrap(), Input::Who);
        assert_eq!(parse("/invite").unwrap(), Input::Invite);
        assert_eq!(parse("/retry").unwrap(), Input::Retry);
        assert_eq!(parse("/fingerprint").unwrap(), Input::Fingerprint(None));
        assert_eq!(
            parse("/fingerprint bob").unwrap(),
            Input::Fingerprint(Some("bob".into()))
        );
        assert_eq!(parse("/verify bob").unwrap(), Input::Verify("bob".into()));
        assert_eq!(parse("/leave").unwrap(), Input::Leave);
        match parse("/ask bob Where did we meet? In Paris ").unwrap() {
            Input::Ask {
                nick,
                question,
                answer,
            } => {
                assert_eq!(nick, "bob");
                assert_eq!(question.as_deref(), Some("Where did we meet?"));
                assert_eq!(answer.as_str(), "In Paris");
            }
            other => panic!("{other:?}"),
        }
        match parse("/ask bob shared-secret").unwrap() {
            Input::Ask {
                question, answer, ..
            } => {
                assert_eq!(question, None);
                assert_eq!(answer.as_str(), "shared-secret");
            }
            other => panic!("{other:?}"),
        }
        match parse("/answer alice in paris").unwrap() {
            Input::Answer { nick, answer } => {
                assert_eq!(nick, "alice");
                assert_eq!(answer.as_str(), "in paris");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_explain() {
        for bad in [
            "/msg",
            "/msg bob",
            "/verify",
            "/ask bob Where?",
            "/answer bob",
            "/nope",
            "/msg \"unterminated hi",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
