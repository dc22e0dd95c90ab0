//! `cryptocat-server`: see the crate documentation of `cryptocat_relay`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cryptocat_relay::acme::AcmeConfig;
use cryptocat_relay::component::connection::ComponentConfig;
use cryptocat_relay::component::read_secret_file;
use cryptocat_relay::tls::Origin;
use cryptocat_relay::{Config, Limits, Server};

/// How long a shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Cryptocat relay server: XMPP that carries only Cryptocat ciphertext.
#[derive(Debug, Parser)]
#[command(
    name = "cryptocat-server",
    version,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    relay: RelayArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the room service (MUC) as an XEP-0114 component of another XMPP server
    /// (Prosody, ejabberd): the same rooms, plaintext policy and limits as the relay.
    Component(ComponentArgs),
}

#[derive(Debug, clap::Args)]
struct ComponentArgs {
    /// The host server's component port; give it once per node of a cluster to fail
    /// over between them (tried in turn).
    #[arg(long, value_name = "HOST:PORT", required = true)]
    connect: Vec<String>,
    /// The component's domain, the room service (e.g. conference.example.org).
    #[arg(long)]
    domain: String,
    /// File holding the shared secret (one line; not readable by other users).
    #[arg(long, value_name = "PATH")]
    secret_file: PathBuf,
    /// TOML file whose `[limits]` table sets the limits (the relay's file does; its
    /// other settings are ignored here).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The relay's settings (no subcommand).
#[derive(Debug, clap::Args)]
struct RelayArgs {
    /// TOML file with the same settings (command-line values override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// XMPP domain (rooms are at conference.<domain>).
    #[arg(long)]
    domain: Option<String>,
    /// Client-to-server listener address.
    #[arg(long)]
    c2s: Option<SocketAddr>,
    /// HTTP listener address: BOSH at /http-bind, WebSocket at /xmpp-websocket.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// HTTPS on the HTTP listener: `true` also with the generated certificate, `false`
    /// plain HTTP even with --tls-cert (behind a reverse proxy). Default: HTTPS exactly
    /// when --tls-cert/--tls-key are given.
    #[arg(long)]
    http_tls: Option<bool>,
    /// PEM certificate chain.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Directory kept across restarts: the generated key (so the key pin stays the same)
    /// and certificate, and with ACME its account and certificates.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Refuse room joins of accounts that did not log in with X-CRYPTOCAT-KEY.
    #[arg(long)]
    require_key_bound: bool,
    /// The host name clients use to reach this server, in the printed addresses and
    /// invite links (default: the domain).
    #[arg(long)]
    public_host: Option<String>,
    /// Get and renew the certificate by ACME (Let's Encrypt unless --acme-directory);
    /// needs --state-dir. The other --acme-* options turn it on too.
    #[arg(long)]
    acme: bool,
    /// ACME directory URL (default: Let's Encrypt production).
    #[arg(long, value_name = "URL")]
    acme_directory: Option<String>,
    /// Contact email address given to the ACME CA (optional).
    #[arg(long, value_name = "EMAIL")]
    acme_contact: Option<String>,
    /// A name on the certificate (repeatable; default: the domain and the public host).
    #[arg(long = "acme-domain", value_name = "NAME")]
    acme_domains: Vec<String>,
    /// PEM file of CAs to trust for the ACME directory's HTTPS, besides the system's.
    #[arg(long, value_name = "PEM")]
    acme_directory_ca: Option<PathBuf>,
    /// Address of the HTTP-01 challenge listener (default [::]:80).
    #[arg(long, value_name = "ADDR")]
    acme_challenge: Option<SocketAddr>,
}

fn config(args: RelayArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            toml::from_str::<Config>(&text)
                .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?
        }
        None => {
            let domain = args.domain.clone().unwrap_or_else(|| "localhost".into());
            let c2s = args.c2s.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5222)));
            Config::new(domain, c2s)
        }
    };
    if let Some(d) = args.domain {
        config.domain = d;
    }
    if let Some(a) = args.c2s {
        config.c2s = a;
    }
    if args.http.is_some() {
        config.http = args.http;
    }
    if args.http_tls.is_some() {
        config.http_tls = args.http_tls;
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
        config.tls_key = args.tls_key;
    }
    if args.state_dir.is_some() {
        config.state_dir = args.state_dir;
    }
    if args.require_key_bound {
        config.require_key_bound = true;
    }
    if args.public_host.is_some() {
        config.public_host = args.public_host;
    }
    let acme_flags = args.acme
        || args.acme_directory.is_some()
        || args.acme_contact.is_some()
        || !args.acme_domains.is_empty()
        || args.acme_directory_ca.is_some()
        || args.acme_challenge.is_some();
    if acme_flags {
        let acme = config.acme.get_or_insert_with(AcmeConfig::default);
        if let Some(directory) = args.acme_directory {
            acme.directory = directory;
        }
        if args.acme_contact.is_some() {
            acme.contact = args.acme_contact;
        }
        if !args.acme_domains.is_empty() {
            acme.domains = args.acme_domains;
        }
        if args.acme_directory_ca.is_some() {
            acme.directory_ca = args.acme_directory_ca;
        }
        if let Some(addr) = args.acme_challenge {
            acme.challenge_listen = addr;
        }
    }
    Ok(config)
}

/// Waits for SIGTERM or SIGINT (ctrl-c); on other systems ctrl-c only.
#[cfg(unix)]
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Windows: waits for ctrl-c, ctrl-break, the console window closing or the system
/// shutting down (console control events; after a close or shutdown event Windows ends
/// the process about 5 s later, the shutdown's grace period).
#[cfg(windows)]
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::windows;
    let mut c = windows::ctrl_c()?;
    let mut brk = windows::ctrl_break()?;
    let mut close = windows::ctrl_close()?;
    let mut shutdown = windows::ctrl_shutdown()?;
    Ok(tokio::select! {
        _ = c.recv() => "ctrl-c",
        _ = brk.recv() => "ctrl-break",
        _ = close.recv() => "console closed",
        _ = shutdown.recv() => "system shutdown",
    })
}

/// Waits for ctrl-c (neither unix nor Windows).
#[cfg(not(any(unix, windows)))]
async fn stop_signal() -> anyhow::Result<&'static str> {
    tokio::signal::ctrl_c().await?;
    Ok("ctrl-c")
}

/// The `[limits]` of a TOML file (the relay's configuration file, or one with only them).
#[derive(serde::Deserialize)]
struct LimitsFile {
    #[serde(default)]
    limits: Limits,
}

fn component_config(args: ComponentArgs) -> anyhow::Result<ComponentConfig> {
    let domain = jid::BareJid::new(&args.domain)
        .ok()
        .filter(|j| j.node().is_none())
        .map(|j| j.to_string())
        .ok_or_else(|| {
            anyhow::anyhow!("--domain must be a domain name (like conference.example.org)")
        })?;
    let limits = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            toml::from_str::<LimitsFile>(&text)
                .map_err(|e| anyhow::anyhow!("invalid limits in {}: {e}", path.display()))?
                .limits
        }
        None => Limits::default(),
    };
    let secret = read_secret_file(&args.secret_file)?;
    Ok(ComponentConfig {
        connect: args.connect,
        domain,
        secret,
        limits,
    })
}

#[allow(clippy::print_stdout)] // the banner is the program's output
async fn run_component(config: ComponentConfig) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (domain, connect) = (config.domain.clone(), config.connect.join(", "));
    println!("cryptocat-server: component {domain} connecting to {connect}");
    let task = tokio::spawn(cryptocat_relay::component::connection::run(
        config,
        stopped,
        move |address: &str| {
            // Scripts wait for this line.
            println!("cryptocat-server: component {domain} attached to {address}");
        },
    ));
    let signal = stop_signal().await?;
    eprintln!("cryptocat-server: {signal}: shutting down");
    let _ = stop.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
        eprintln!("cryptocat-server: the component did not close in time");
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the start banner is the program's output
async fn run(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    let running = server.spawn();
    println!(
        "cryptocat-server: c2s on {} (STARTTLS required)",
        running.c2s_addr
    );
    if let Some(http) = running.http_addr {
        let (scheme, ws) = if running.http_tls {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        println!("cryptocat-server: BOSH at {scheme}://{http}/http-bind");
        println!("cryptocat-server: WebSocket at {ws}://{http}/xmpp-websocket (subprotocol xmpp)");
    }
    let origin = match running.tls.origin {
        Origin::Acme if running.tls.generated => "generated self-signed (until ACME's arrives)",
        Origin::Acme => "ACME",
        Origin::Generated => "generated self-signed",
        Origin::Loaded => "loaded",
    };
    // Scripts read this line: `cryptocat-server: ORIGIN certificate PATH`.
    println!(
        "cryptocat-server: {origin} certificate {}",
        running.tls.certificate_path.display()
    );
    println!(
        "cryptocat-server: SHA-256 fingerprint {}",
        running.tls.fingerprint()
    );
    println!("cryptocat-server: key pin {}", running.tls.pin());
    if let Some(acme) = running.acme() {
        let challenge = running
            .challenge_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        println!(
            "cryptocat-server: ACME from {} for {} (HTTP-01 on {challenge})",
            acme.directory(),
            acme.names().join(", ")
        );
    }
    let access = running.public_access();
    match access.check() {
        Ok(()) => println!("cryptocat-server: invite links: {}", access.link_prefix()),
        Err(e) => println!("cryptocat-server: no invite links: {e}"),
    }
    let signal = stop_signal().await?;
    eprintln!("cryptocat-server: {signal}: shutting down");
    if !running.shutdown(SHUTDOWN_GRACE).await {
        eprintln!("cryptocat-server: some connections did not close in time");
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal (not in the journal or a log file).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let result = match args.command {
        Some(Command::Component(component)) => component_config(component)
            .and_then(|config| runtime()?.block_on(run_component(config))),
        None => config(args.relay).and_then(|config| runtime()?.block_on(run(config))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cryptocat-server: {e}");
            ExitCode::from(2)
        }
    }
}
