//! Replays the link fuzz corpora (`fuzz/corpus/link_*`) through the same checks as the
//! fuzz targets (`fuzz/link_checks.rs`), on stable Rust, so CI runs them.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../../../fuzz/link_checks.rs"]
mod link_checks;
#[path = "../../../fuzz/replay.rs"]
mod replay;

use std::path::Path;

#[test]
fn link_fuzz_corpora_pass_their_checks() {
    assert!(replay::replay_corpora(link_checks::LINK_TARGETS, "link_") > 0);
}

#[test]
fn link_seeds_reach_the_accepting_paths() {
    for (target, name, bytes) in link_checks::link_seeds() {
        replay::check_for(link_checks::LINK_TARGETS, target, name)(&bytes);
        let text = String::from_utf8(bytes).unwrap();
        let accepted = cryptocat_link::Invite::parse(&text).is_ok();
        match name {
            "future-version" | "pin" | "url" => assert!(!accepted, "{name}"),
            _ => assert!(accepted, "seed {name} refused"),
        }
    }
}

/// Writes the seeds to `fuzz/corpus/<target>/seed-<name>`:
/// `cargo test -p cryptocat-link --test fuzz_corpus -- --ignored write_link_seed_corpus`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand after changing the seeds"]
fn write_link_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, name, bytes) in link_checks::link_seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
