//! Replays the client transport's fuzz corpora (`fuzz/corpus/client_*`) through the same
//! checks as the fuzz targets (`fuzz/client_checks.rs`), on stable Rust, so CI runs them.

#[path = "../../../../fuzz/client_checks.rs"]
mod client_checks;
#[path = "../../../../fuzz/replay.rs"]
mod replay;

use std::path::Path;

#[test]
fn client_fuzz_corpora_pass_their_checks() {
    assert!(replay::replay_corpora(client_checks::CLIENT_TARGETS, "client_") > 0);
}

#[test]
fn client_seeds_reach_the_accepting_paths() {
    use cryptocat_xmpp::bosh::parse_body;
    use cryptocat_xmpp::session::parse_server_first;
    for (target, name, bytes) in client_checks::client_seeds() {
        replay::check_for(client_checks::CLIENT_TARGETS, target, name)(&bytes);
        match (target, name) {
            ("client_bosh_body", _) => {
                let limits = cryptocat_xmpp::xml::ParserLimits::default();
                assert!(parse_body(&bytes, limits, 8).is_ok(), "seed {name} refused");
            }
            ("client_scram_first", "rfc7677") => {
                let text = std::str::from_utf8(&bytes).unwrap();
                let (cnonce, first) = text.split_once('\n').unwrap();
                let parsed = parse_server_first(first, cnonce).unwrap();
                assert_eq!(parsed.iterations, 4096);
            }
            ("client_scram_first", "extension") => {
                let text = std::str::from_utf8(&bytes).unwrap();
                let (cnonce, first) = text.split_once('\n').unwrap();
                assert!(parse_server_first(first, cnonce).is_err());
            }
            _ => {}
        }
    }
}

/// Writes the seeds to `fuzz/corpus/<target>/seed-<name>`:
/// `cargo test -p cryptocat-xmpp --test xmpp -- --ignored write_client_seed_corpus`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand after changing the seeds"]
fn write_client_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, name, bytes) in client_checks::client_seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
