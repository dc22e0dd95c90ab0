//! `cryptocat-server`: see the crate documentation of `cryptocat_relay`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cryptocat_relay::{Config, Server};

/// Cryptocat relay server: XMPP that carries only Cryptocat ciphertext.
#[derive(Debug, Parser)]
#[command(name = "cryptocat-server", version)]
struct Args {
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
    /// Directory for the generated certificate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Refuse room joins of accounts that did not log in with X-CRYPTOCAT-KEY.
    #[arg(long)]
    require_key_bound: bool,
}

fn config(args: Args) -> anyhow::Result<Config> {
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
    Ok(config)
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
    let origin = if running.tls.generated {
        "generated self-signed"
    } else {
        "loaded"
    };
    println!(
        "cryptocat-server: {origin} certificate {}",
        running.tls.certificate_path.display()
    );
    println!(
        "cryptocat-server: SHA-256 fingerprint {}",
        running.tls.fingerprint()
    );
    tokio::signal::ctrl_c().await?;
    running.stop();
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = config(args).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cryptocat-server: {e}");
            ExitCode::from(2)
        }
    }
}
