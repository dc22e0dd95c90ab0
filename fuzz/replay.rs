//! Replaying fuzz corpora on stable Rust: shared by the corpus tests of the crates
//! (`crates/xmpp/tests/xmpp/fuzz_corpus.rs`, `crates/relay/tests/relay/fuzz_corpus.rs`),
//! which include this file with `#[path]` next to the checks they replay.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

/// Longest one corpus input may take to replay: the fuzzers look for slow inputs too
/// (run them with `-timeout`), and an input over this fails the replay.
pub const INPUT_BUDGET: Duration = Duration::from_millis(50);

/// Runs `check` on `data` and returns how long it took; when a run is over
/// [`INPUT_BUDGET`], the least of three (a busy machine's scheduling is not the input's
/// cost; a slow input is slow every time).
pub fn timed(check: fn(&[u8]), data: &[u8]) -> Duration {
    let once = || {
        let start = Instant::now();
        check(data);
        start.elapsed()
    };
    let first = once();
    if first <= INPUT_BUDGET {
        return first;
    }
    first.min(once()).min(once())
}

/// Fails listing the inputs over [`INPUT_BUDGET`], with their times.
pub fn assert_within_budget(slow: &[(String, Duration)]) {
    assert!(
        slow.is_empty(),
        "{} corpus inputs took longer than {INPUT_BUDGET:?} to replay:\n{}",
        slow.len(),
        slow.iter()
            .map(|(name, took)| format!("{name}: {took:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A fuzz target's name and the checks its inputs must pass.
pub type Target<'a> = (&'a str, fn(&[u8]));

/// Runs `check` on every file of `fuzz/corpus/TARGET` for each target (none may be empty),
/// and fails when a fuzz target named `PREFIX*` in `fuzz/fuzz_targets` has no check here.
/// Returns how many inputs ran.
pub fn replay_corpora(targets: &[Target<'_>], prefix: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut total = 0;
    let mut slow = Vec::new();
    for (target, check) in targets {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {target} is empty");
        let mut slowest = Duration::ZERO;
        for f in &files {
            let took = timed(*check, &std::fs::read(f).unwrap());
            slowest = slowest.max(took);
            if took > INPUT_BUDGET {
                slow.push((f.display().to_string(), took));
            }
        }
        eprintln!(
            "fuzz corpus {target}: replayed {} inputs, slowest {slowest:?}",
            files.len()
        );
        total += files.len();
    }
    assert_within_budget(&slow);
    for entry in std::fs::read_dir(root.join("../fuzz_targets")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            assert!(
                targets.iter().any(|(t, _)| *t == name),
                "fuzz target {name} has no check in the list replayed here"
            );
        }
    }
    total
}

/// The check of `target` for the seed `name` (fails for a seed of an unknown target).
pub fn check_for(targets: &[Target<'_>], target: &str, name: &str) -> fn(&[u8]) {
    targets
        .iter()
        .find(|(t, _)| *t == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("seed {name} for unknown target {target}"))
}
