//! `cryptocat`: the command-line client.
//!
//! `cryptocat join --server URL --room ROOM --nick NICK [--json] [--ca-cert PATH]`
//! joins a room and chats: standard input in (a plain line is a group message, `/help`
//! lists the commands), a readable transcript or JSON lines out (see the README for the
//! format). Exit status: 0 after leaving (`/leave` or end of input), 1 when the server
//! cannot be reached or the connection is given up, 2 for bad arguments.

mod input;
mod output;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cryptocat_client::{Engine, EngineConfig, EngineEvent, EngineHandle, ServerUrl, TrustConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::input::Input;

#[derive(Debug, Parser)]
#[command(
    name = "cryptocat",
    version,
    about = "End-to-end encrypted group chat over XMPP",
    long_about = "End-to-end encrypted group chat over XMPP. \
        Every session has fresh keys; nicknames travel only inside the encrypted key exchange."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join a room and chat (standard input: messages and /commands; /help lists them).
    Join(JoinArgs),
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The server: xmpp://host:port (TCP with STARTTLS), ws:// or wss://host/xmpp-websocket,
    /// http:// or https://host/http-bind (BOSH).
    #[arg(long)]
    server: String,
    /// The room name (letters, digits, '-', '_', '.').
    #[arg(long)]
    room: String,
    /// Your nickname in the room (only the other members see it, never the server).
    #[arg(long)]
    nick: String,
    /// Print one JSON object per line instead of a readable transcript.
    #[arg(long)]
    json: bool,
    /// Also trust the certificate(s) in this PEM file (e.g. the relay's self-signed one).
    #[arg(long, value_name = "PATH")]
    ca_cert: Option<PathBuf>,
    /// The XMPP domain, when it differs from the server's host name.
    #[arg(long)]
    domain: Option<String>,
}

/// Where events and answers go.
struct Out {
    json: bool,
    me: String,
}

impl Out {
    fn write_line(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not worth a crash.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    fn json(&self, value: &Value) {
        self.write_line(&value.to_string());
    }

    fn event(&self, event: &EngineEvent) {
        if self.json {
            if let Some(v) = output::event_json(event) {
                self.json(&v);
            }
        } else if let Some(line) = output::event_text(event, &self.me) {
            self.write_line(&line);
        }
    }

    fn error(&self, code: &str, message: &str) {
        if self.json {
            self.json(&json!({"type": "error", "code": code, "message": message}));
        } else {
            self.write_line(&format!("! error: {message}"));
        }
    }

    fn info(&self, text: &str) {
        if !self.json {
            self.write_line(text);
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cryptocat: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match cli.command {
        Command::Join(args) => runtime.block_on(join(args)),
    };
    // The stdin reader is a blocking thread that may still wait for a line: do not wait
    // for it.
    runtime.shutdown_background();
    code
}

async fn join(args: JoinArgs) -> ExitCode {
    let server = match ServerUrl::parse(&args.server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cryptocat: bad --server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut trust = TrustConfig::system();
    if let Some(path) = &args.ca_cert {
        match TrustConfig::system_and_file(path) {
            Ok(t) => trust = t,
            Err(e) => {
                eprintln!("cryptocat: bad --ca-cert: {e}");
                return ExitCode::from(2);
            }
        }
    }
    for (what, check) in [
        (
            "--room",
            cryptocat_client::check_room_name(&args.room).err(),
        ),
        ("--nick", cryptocat_client::check_nickname(&args.nick).err()),
    ] {
        if let Some(e) = check {
            eprintln!("cryptocat: bad {what}: {e}");
            return ExitCode::from(2);
        }
    }
    let mut config = EngineConfig::new(server, &args.room, &args.nick);
    config.trust = trust;
    config.domain = args.domain.clone();
    let out = Out {
        json: args.json,
        me: args.nick.trim().to_owned(),
    };
    out.event(&EngineEvent::Connection(
        cryptocat_client::ConnectionState::Connecting,
    ));
    let (handle, mut events) = match Engine::start(config).await {
        Ok(v) => v,
        Err(e) => {
            out.error(e.code(), &e.to_string());
            if out.json {
                eprintln!("cryptocat: {e}");
            }
            return ExitCode::from(1);
        }
    };

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut left = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                out.event(&event);
                match event {
                    EngineEvent::Left => left = true,
                    EngineEvent::Connection(cryptocat_client::ConnectionState::Offline) => break,
                    _ => {}
                }
            }
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if command(&handle, &out, &line).await {
                        let _ = handle.leave().await;
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    // End of input: let waiting messages reach the server, then leave.
                    wait_sent(&handle).await;
                    let _ = handle.leave().await;
                }
            },
        }
    }
    if left {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Waits (at most 10 s) until the server accepted everything we sent.
async fn wait_sent(handle: &EngineHandle) {
    for _ in 0..100 {
        match handle.pending().await {
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs one line of input. Returns `true` to leave.
async fn command(handle: &EngineHandle, out: &Out, line: &str) -> bool {
    let input = match input::parse(line) {
        Ok(i) => i,
        Err(usage) => {
            out.error("bad_command", usage);
            return false;
        }
    };
    let result = match input {
        Input::Nothing => Ok(()),
        Input::Group(text) => handle.send(&text).map(|_| ()),
        Input::Private { nick, text } => handle.send_private(&nick, &text).await,
        Input::Who => match handle.members().await {
            Ok(members) => {
                if out.json {
                    let list: Vec<Value> = members.iter().map(output::member_json).collect();
                    out.json(&json!({"type": "members", "members": list}));
                } else if members.is_empty() {
                    out.info("* nobody else is here yet");
                } else {
                    for m in &members {
                        out.info(&format!(
                            "* {}  {}{}",
                            output::sanitize(&m.nick),
                            m.fingerprint,
                            if m.verified { "  (verified)" } else { "" }
                        ));
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        Input::Fingerprint(None) => {
            if out.json {
                out.json(&json!({"type": "fingerprint", "nick": handle.nick(), "fingerprint": handle.fingerprint()}));
            } else {
                out.info(&format!("* your fingerprint: {}", handle.fingerprint()));
            }
            Ok(())
        }
        Input::Fingerprint(Some(nick)) => match handle.members().await {
            Ok(members) => match members.iter().find(|m| m.nick == nick) {
                Some(m) => {
                    if out.json {
                        let mut v = output::member_json(m);
                        output::set(&mut v, "type", json!("fingerprint"));
                        out.json(&v);
                    } else {
                        out.info(&format!(
                            "* {}: fingerprint {}\n* safety number: {}\n* yours: {}",
                            output::sanitize(&m.nick),
                            m.fingerprint,
                            m.safety_number,
                            handle.fingerprint()
                        ));
                    }
                    Ok(())
                }
                None => Err(cryptocat_client::EngineError::UnknownNickname),
            },
            Err(e) => Err(e),
        },
        Input::Verify(nick) => handle.mark_verified(&nick, true).await,
        Input::Unverify(nick) => handle.mark_verified(&nick, false).await,
        Input::Ask {
            nick,
            question,
            answer,
        } => {
            let r = handle
                .ask_question(&nick, question.as_deref(), &answer)
                .await;
            if r.is_ok() {
                out.info(&format!(
                    "* asked {}; waiting for the answer",
                    output::sanitize(&nick)
                ));
            }
            r
        }
        Input::Answer { nick, answer } => handle.answer(&nick, &answer).await,
        Input::Leave => return true,
        Input::Help => {
            if out.json {
                out.json(&json!({"type": "help", "text": input::HELP}));
            } else {
                out.info(input::HELP);
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        out.error(e.code(), &e.to_string());
    }
    false
}
