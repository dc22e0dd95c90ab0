//! `cryptocat`: the command-line client.
//!
//! `cryptocat join LINK --nick NICK [--json]` joins the room an invite link names;
//! `cryptocat join --server URL [--pin PIN] --room ROOM --nick NICK [--json] [--ca-cert PATH]`
//! joins a room on a server given by address; `cryptocat host --room ROOM --nick NICK
//! [--local-network]` starts the relay the desktop app embeds, prints its invite links and
//! joins. Then: standard input in (a plain line is a group message, `/help` lists the
//! commands), a readable transcript or JSON lines out (see the README for the format).
//! Exit status: 0 after leaving (`/leave` or end of input), 1 when the server cannot be
//! reached or the connection is given up, 2 for bad arguments.

mod input;
mod output;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cryptocat_client::{
    Access, Engine, EngineConfig, EngineEvent, EngineHandle, Invite, Pin, ServerUrl, StartError,
    TrustConfig,
};
use cryptocat_relay::embedded;
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
    /// Host a room on this computer: start the relay the desktop app embeds, print the
    /// invite links that reach it, and join.
    Host(HostArgs),
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// An invite link, cryptocat://join?v=1&... (it names the room and the server, and
    /// the server's key); or give --server and --room instead.
    #[arg(value_name = "LINK", conflicts_with_all = ["server", "room", "domain", "ca_cert"])]
    link: Option<String>,
    /// The server: xmpp://host:port (TCP with STARTTLS), ws:// or wss://host/xmpp-websocket,
    /// http:// or https://host/http-bind (BOSH).
    #[arg(long, required_unless_present = "link")]
    server: Option<String>,
    /// Accept the server only if its key has this pin (sha256/..., as invite links carry
    /// it); may be given more than once. With a pin, certificate authorities are not used.
    #[arg(
        long,
        value_name = "PIN",
        requires = "server",
        conflicts_with = "ca_cert"
    )]
    pin: Vec<String>,
    /// The room name (letters, digits, '-', '_', '.').
    #[arg(long, required_unless_present = "link")]
    room: Option<String>,
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

#[derive(Debug, clap::Args)]
struct HostArgs {
    /// The room name (letters, digits, '-', '_', '.').
    #[arg(long)]
    room: String,
    /// Your nickname in the room.
    #[arg(long)]
    nick: String,
    /// Print one JSON object per line instead of a readable transcript.
    #[arg(long)]
    json: bool,
    /// Let other computers on the local network join (listen on every interface; they
    /// connect with TLS, checked by the key pin in the link).
    #[arg(long)]
    local_network: bool,
    /// Keep the relay's TLS key here, so that links stay valid across restarts (default:
    /// a new key, and new links, each time).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Where events and answers go.
struct Out {
    json: bool,
    me: String,
    /// Invite links shown by `/invite` instead of the engine's (when hosting).
    links: Vec<(&'static str, String)>,
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

    /// Like [`Out::event`]; `joined` also carries the address in use, the key its server
    /// showed, and the invite link to the room through it.
    fn event_with(&self, event: &EngineEvent, handle: &EngineHandle) {
        if !matches!(event, EngineEvent::Joined { .. }) {
            return self.event(event);
        }
        let in_use = handle.server_in_use();
        if self.json {
            if let Some(mut v) = output::event_json(event) {
                if let Some(in_use) = &in_use {
                    output::set(&mut v, "server", json!(in_use.url.to_string()));
                    if let Some(key) = &in_use.key {
                        output::set(&mut v, "server_key", json!(key.to_string()));
                    }
                }
                output::set(&mut v, "invite", json!(handle.invite().to_link()));
                self.json(&v);
            }
        } else {
            self.event(event);
            if let Some(key) = in_use.and_then(|s| s.key) {
                self.write_line(&format!("* the server's key: {key}"));
            }
        }
    }

    fn error(&self, code: &str, message: &str) {
        if self.json {
            self.json(&json!({"type": "error", "code": code, "message": message}));
        } else {
            self.write_line(&format!("! error: {message}"));
        }
    }

    /// A failed start: the code, and for a server that could not be reached the reason
    /// (`wrong_server`, `certificate_refused`, ...) and the key it showed.
    fn start_error(&self, e: &StartError) {
        if self.json {
            let mut v = json!({"type": "error", "code": e.code(), "message": e.to_string()});
            if let Some(reason) = e.reason() {
                output::set(&mut v, "reason", json!(reason));
            }
            if let Some(pin) = e.seen_key() {
                output::set(&mut v, "seen_key", json!(pin.to_string()));
            }
            self.json(&v);
            eprintln!("cryptocat: {e}");
        } else {
            self.write_line(&format!("! error: {e}"));
        }
    }

    /// Invite links, each with what it is for (`this_computer`, `local_network`,
    /// `server_in_use`).
    fn invites(&self, links: &[(&str, String)]) {
        if self.json {
            let list: Vec<Value> = links
                .iter()
                .map(|(way, link)| json!({"way": way, "link": link}))
                .collect();
            self.json(&json!({"type": "invite", "links": list}));
        } else {
            for (way, link) in links {
                let who = match *way {
                    "this_computer" => "from this computer",
                    "local_network" => "from another computer on your local network",
                    _ => "from anywhere that reaches the server",
                };
                self.write_line(&format!("* invite {who}: {link}"));
            }
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
        Command::Host(args) => runtime.block_on(host(args)),
    };
    // The stdin reader is a blocking thread that may still wait for a line: do not wait
    // for it.
    runtime.shutdown_background();
    code
}

/// Bad arguments: a message on stderr, exit status 2.
fn usage(what: &str, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("cryptocat: bad {what}: {e}");
    ExitCode::from(2)
}

/// The engine settings for `join`: from the link, or from --server, --pin, --room.
fn join_config(args: &JoinArgs) -> Result<EngineConfig, ExitCode> {
    if let Some(link) = &args.link {
        let invite = Invite::parse(link).map_err(|e| usage("invite link", &e))?;
        cryptocat_client::check_nickname(&args.nick).map_err(|e| usage("--nick", &e))?;
        return EngineConfig::for_access(&invite.access, &invite.room, &args.nick)
            .map_err(|e| usage("invite link", &e));
    }
    let server = args.server.as_deref().unwrap_or_default();
    let server = ServerUrl::parse(server).map_err(|e| usage("--server", &e))?;
    let room = args.room.as_deref().unwrap_or_default();
    for (what, check) in [
        ("--room", cryptocat_client::check_room_name(room).err()),
        ("--nick", cryptocat_client::check_nickname(&args.nick).err()),
    ] {
        if let Some(e) = check {
            return Err(usage(what, &e));
        }
    }
    let pins = args
        .pin
        .iter()
        .map(|p| p.parse::<Pin>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage("--pin", &e))?;
    let mut access = Access::server(server);
    access.domain.clone_from(&args.domain);
    access.pins = pins;
    let mut config =
        EngineConfig::for_access(&access, room, &args.nick).map_err(|e| usage("--server", &e))?;
    if let Some(path) = &args.ca_cert {
        config.trust = TrustConfig::system_and_file(path).map_err(|e| usage("--ca-cert", &e))?;
    }
    Ok(config)
}

async fn join(args: JoinArgs) -> ExitCode {
    let config = match join_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let out = Out {
        json: args.json,
        me: args.nick.trim().to_owned(),
        links: Vec::new(),
    };
    chat(config, out).await
}

async fn host(args: HostArgs) -> ExitCode {
    for (what, check) in [
        (
            "--room",
            cryptocat_client::check_room_name(&args.room).err(),
        ),
        ("--nick", cryptocat_client::check_nickname(&args.nick).err()),
    ] {
        if let Some(e) = check {
            return usage(what, &e);
        }
    }
    let options = embedded::Options {
        local_network: args.local_network,
        state_dir: args.state_dir.clone(),
    };
    let relay = match embedded::start(&options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cryptocat: the relay could not start: {e}");
            return ExitCode::from(1);
        }
    };
    let room = args.room.to_lowercase();
    let invite = |access: Access| {
        Invite {
            room: room.clone(),
            access,
        }
        .to_link()
    };
    let mut links = vec![("this_computer", invite(relay.this_computer()))];
    if let Some(access) = relay.local_network_access() {
        links.push(("local_network", invite(access)));
    } else if args.local_network {
        eprintln!(
            "cryptocat: this computer has no local network address: only this computer can join"
        );
    }
    let out = Out {
        json: args.json,
        me: args.nick.trim().to_owned(),
        links,
    };
    out.invites(&out.links);
    let config = match EngineConfig::for_access(&relay.this_computer(), &room, &args.nick) {
        Ok(c) => c,
        Err(e) => return usage("--room", &e),
    };
    let code = chat(config, out).await;
    relay.running.stop();
    code
}

/// Joins and chats until leaving or the end of input.
async fn chat(config: EngineConfig, out: Out) -> ExitCode {
    out.event(&EngineEvent::Connection(
        cryptocat_client::ConnectionState::Connecting,
    ));
    let (handle, mut events) = match Engine::start(config).await {
        Ok(v) => v,
        Err(e) => {
            out.start_error(&e);
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
                out.event_with(&event, &handle);
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
        Input::Invite => {
            if out.links.is_empty() {
                out.invites(&[("server_in_use", handle.invite().to_link())]);
            } else {
                out.invites(&out.links);
            }
            Ok(())
        }
        Input::Retry => handle.retry_now(),
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
