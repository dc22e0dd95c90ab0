//! Replays the relay's fuzz corpora (`fuzz/corpus/relay_*`) through the same checks as the
//! fuzz targets (`fuzz/relay_checks.rs`), on stable Rust, so CI exercises them.

#[path = "../../../../fuzz/relay_checks.rs"]
mod relay_checks;
#[path = "../../../../fuzz/replay.rs"]
mod replay;

use std::path::Path;

#[test]
fn relay_fuzz_corpora_pass_their_checks() {
    assert!(replay::replay_corpora(relay_checks::RELAY_TARGETS, "relay_") > 0);
}

#[test]
fn relay_seeds_pass_their_checks() {
    for (target, name, bytes) in relay_checks::relay_seeds() {
        replay::check_for(relay_checks::RELAY_TARGETS, target, &name)(&bytes);
        // The seeds reach the paths they are named after.
        if target == "relay_stanza"
            && ["groupchat", "groupchat-ws", "chat"].contains(&name.as_str())
        {
            let el: minidom::Element = std::str::from_utf8(&bytes)
                .unwrap()
                .replacen("<message ", "<message xmlns='jabber:client' ", 1)
                .replacen(
                    "xmlns='jabber:client' xmlns='jabber:client'",
                    "xmlns='jabber:client'",
                    1,
                )
                .parse()
                .unwrap();
            match cryptocat_relay::stanza::Stanza::parse(&el) {
                Ok(cryptocat_relay::stanza::Stanza::Message(m)) => {
                    assert!(m.payload.is_ok(), "seed {name} refused: {:?}", m.payload)
                }
                other => panic!("seed {name}: {other:?}"),
            }
        }
    }
}

/// Writes the seeds to `fuzz/corpus/<target>/seed-<name>`:
/// `cargo test -p cryptocat-server --test relay -- --ignored write_relay_seed_corpus`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand after changing the seeds"]
fn write_relay_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, name, bytes) in relay_checks::relay_seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
