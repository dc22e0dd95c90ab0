//! `cryptocat-bench`: measures Cryptocat against peer implementations in the same process.
//!
//! ```text
//! cargo run --release -p cryptocat-bench -- pairwise [--json]
//! cargo run --release -p cryptocat-bench -- group [--members N] [--json]
//! cargo run --release -p cryptocat-bench -- relay [--json]
//! cargo run --release -p cryptocat-bench -- e2e [--transports tcp,websocket,bosh] [--members 50] [--json]
//! cargo run --release -p cryptocat-bench -- desktop [--idle-secs 10] [--json]
//! cargo run --release -p cryptocat-bench -- files [--json]
//! cargo run --release -p cryptocat-bench -- attack [--op early_data] [--op raw_connections] [--occupants 254] [--json]
//! ```
//!
//! Each subcommand is one suite in its own module; [`measure`] holds the shared timing
//! (calibrated batches, warm-up, median) and output (a table, or one JSON object per line).

#![allow(clippy::print_stdout)] // printing results is this binary's job

use clap::{Parser, Subcommand};

mod attack;
mod attack_relay;
mod attack_server;
mod desktop;
mod e2e;
mod files;
mod group;
mod measure;
mod pairwise;
mod relay;

/// Benchmarks of Cryptocat against peers, measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "cryptocat-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// One-to-one protocol (handshake and double ratchet) against vodozemac's Olm.
    Pairwise(pairwise::Args),
    /// Group protocol (send, receive, join at N members) against vodozemac's Megolm and a
    /// Cryptocat-2-style per-recipient reference.
    Group(group::Args),
    /// End to end through the relay on loopback: send-to-display latency per transport,
    /// and the time for the last member of a room to join until it can send, against
    /// the bare XMPP transport.
    E2e(e2e::Args),
    /// Our relay against Prosody on loopback: deliveries per second, delivery latency and
    /// peak RSS for a room with one sender; RSS holding idle BOSH sessions.
    Relay(relay::Args),
    /// The release desktop app against a blank Tauri window under Xvfb: launch to the
    /// join screen, idle PSS with a room open (app and WebKit processes), the .deb's size.
    Desktop(desktop::Args),
    /// What a hostile member or server can make one member pay: one row per finding of
    /// issue 14, each against an honest message in the same run.
    Attack(attack::Args),
    /// Encrypted files: chunked encryption and decryption throughput against raw
    /// AES-256-GCM on the same buffer, and peak RSS sending and receiving a 1 GiB file.
    Files(files::Args),
    /// Internal: one side of a 1 GiB file stream, for the files suite.
    #[command(hide = true)]
    FilesStream(files::StreamArgs),
    /// Internal: our relay in a process of its own, for the relay suite.
    #[command(hide = true)]
    RelayServer(relay::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.suite {
        Suite::Pairwise(args) => pairwise::run(args),
        Suite::Group(args) => group::run(args),
        Suite::E2e(args) => e2e::run(args),
        Suite::Relay(args) => relay::run(args),
        Suite::Desktop(args) => desktop::run(args),
        Suite::Attack(args) => attack::run(args),
        Suite::Files(args) => files::run(args),
        Suite::FilesStream(args) => files::stream(args),
        Suite::RelayServer(args) => relay::serve(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_parses_group_with_member_counts() {
        let cli =
            Cli::try_parse_from(["cryptocat-bench", "group", "--members", "50", "--json"]).unwrap();
        let Suite::Group(args) = cli.suite else {
            panic!("group expected")
        };
        assert_eq!(args.members, vec![50]);
        assert!(args.measure.json);
        let cli = Cli::try_parse_from(["cryptocat-bench", "group"]).unwrap();
        let Suite::Group(args) = cli.suite else {
            panic!("group expected")
        };
        assert_eq!(args.members, vec![2, 10, 50, 200]);
    }

    #[test]
    fn cli_parses_attack_ops() {
        let cli = Cli::try_parse_from([
            "cryptocat-bench",
            "attack",
            "--op",
            "early_data",
            "--op",
            "identity_replay",
            "--json",
        ])
        .unwrap();
        let Suite::Attack(args) = cli.suite else {
            panic!("attack expected")
        };
        assert_eq!(
            args.ops,
            vec![attack::Op::EarlyData, attack::Op::IdentityReplay]
        );
        assert!(args.measure.json);
        assert_eq!(args.occupants, 254);
        assert!(Cli::try_parse_from(["cryptocat-bench", "attack", "--occupants", "255"]).is_err());
    }

    #[test]
    fn cli_parses_relay() {
        let cli = Cli::try_parse_from(["cryptocat-bench", "relay", "--json"]).unwrap();
        let Suite::Relay(args) = cli.suite else {
            panic!("relay expected")
        };
        assert!(args.json);
        assert_eq!((args.members, args.bosh_sessions), (10, 10_000));
        assert!(Cli::try_parse_from(["cryptocat-bench", "relay", "--members", "1"]).is_err());
    }

    #[test]
    fn cli_is_well_formed_and_parses_pairwise() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["cryptocat-bench", "pairwise", "--json"]).unwrap();
        let Suite::Pairwise(args) = cli.suite else {
            panic!("pairwise expected")
        };
        assert!(args.measure.json);
        assert_eq!(args.measure.batches, 5);
        assert_eq!(args.measure.batch_ms, 50);
        let cli = Cli::try_parse_from(["cryptocat-bench", "pairwise", "--op", "encrypt_dh_step"])
            .unwrap();
        let Suite::Pairwise(args) = cli.suite else {
            panic!("pairwise expected")
        };
        assert_eq!(args.ops, vec![pairwise::Op::EncryptDhStep]);
    }
}
