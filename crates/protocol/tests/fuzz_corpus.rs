//! Replays the fuzz corpora on stable Rust, so CI runs every input the fuzzers kept.
//!
//! The checks are the fuzz targets' own: `fuzz/checks.rs` holds one function per target
//! (`fuzz/fuzz_targets/<target>.rs` is a one-line call to it), included here as a module.
//! Each directory `fuzz/corpus/<target>/` must exist, be non-empty and name a target, so
//! this test cannot pass vacuously. `fuzz/seeds.rs` makes the seed part of the corpora:
//! `cargo test -p cryptocat-protocol --test fuzz_corpus -- --ignored write_seed_corpus`
//! writes it (see `fuzz/README.md`).

// Test code: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../../fuzz/checks.rs"]
mod checks;
#[path = "../../../fuzz/replay.rs"]
mod replay;
#[path = "../../../fuzz/seeds.rs"]
mod seeds;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The files of one corpus directory, sorted.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on `data`; a panic becomes `Err` with its message.
fn run(check: checks::Check, data: &[u8]) -> Result<(), String> {
    run_timed(check, data).map(|_| ())
}

/// As [`run`], and how long it took ([`replay::timed`]).
fn run_timed(check: checks::Check, data: &[u8]) -> Result<std::time::Duration, String> {
    panic::catch_unwind(AssertUnwindSafe(|| replay::timed(check, data))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    })
}

/// Targets whose corpora other crates' tests replay.
fn other_crates_target(name: &str) -> bool {
    ["relay_", "client_", "link_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

#[test]
fn every_corpus_input_passes_its_target_checks() {
    let root = corpus_root();
    // Every directory names a target, so no corpus goes unreplayed.
    for entry in fs::read_dir(&root).expect("fuzz/corpus exists") {
        let path = entry.expect("readable directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // `relay_*` targets check the relay, `client_*` the client transport, `link_*` what
        // people paste; the tests of crates/relay, crates/xmpp and crates/link replay them.
        if path.is_dir() && !other_crates_target(&name) {
            assert!(
                checks::TARGETS.iter().any(|(target, _)| *target == name),
                "fuzz/corpus/{name} matches no target in fuzz/checks.rs"
            );
        }
    }
    // Every fuzz target has a check (and so must have a corpus).
    let targets_dir = root.join("../fuzz_targets");
    for entry in fs::read_dir(&targets_dir).expect("fuzz/fuzz_targets exists") {
        let path = entry.expect("readable directory entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if other_crates_target(&name) {
            continue;
        }
        assert!(
            checks::TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz target {name} is missing from checks::TARGETS"
        );
    }
    let mut failures = Vec::new();
    let mut slow = Vec::new();
    let mut total = 0usize;
    for (target, check) in checks::TARGETS {
        let files = corpus_files(&root.join(target));
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        let mut slowest = std::time::Duration::ZERO;
        for file in &files {
            let data = fs::read(file).expect("readable corpus file");
            match run_timed(*check, &data) {
                Ok(took) => {
                    slowest = slowest.max(took);
                    if took > replay::INPUT_BUDGET {
                        slow.push((file.display().to_string(), took));
                    }
                }
                Err(message) => failures.push(format!("{}: {message}", file.display())),
            }
        }
        eprintln!(
            "fuzz corpus {target}: replayed {} inputs, slowest {slowest:?}",
            files.len()
        );
        total += files.len();
    }
    eprintln!(
        "fuzz corpus: replayed {total} inputs in {} targets",
        checks::TARGETS.len()
    );
    assert!(total >= checks::TARGETS.len());
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    replay::assert_within_budget(&slow);
}

#[test]
fn seed_inputs_pass_their_target_checks() {
    let seeds = seeds::all();
    let mut failures = Vec::new();
    for (target, name, data) in &seeds {
        let (_, check) = checks::TARGETS
            .iter()
            .find(|(t, _)| t == target)
            .unwrap_or_else(|| panic!("seed {name} is for unknown target {target}"));
        if let Err(message) = run(*check, data) {
            failures.push(format!("{target}/seed-{name}: {message}"));
        }
    }
    for (target, _) in checks::TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| t == target),
            "no seeds for {target}"
        );
    }
    eprintln!("fuzz seeds: checked {} inputs", seeds.len());
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The valid seeds are valid: the genuine handshake and data messages decode, and the
/// fixture profiles decode and validate (a seed corpus of rejected inputs would only
/// exercise the first few bytes of each parser).
#[test]
fn genuine_seeds_are_accepted() {
    use cryptocat_protocol::content::Content;
    use cryptocat_protocol::message::Message;
    use cryptocat_protocol::profile::ClientProfile;
    let seeds = seeds::all();
    let get = |target: &str, name: &str| {
        seeds
            .iter()
            .find(|(t, n, _)| *t == target && n == name)
            .map(|(_, _, data)| data.clone())
            .unwrap_or_else(|| panic!("no seed {target}/{name}"))
    };
    for name in [
        "identity",
        "auth-r",
        "auth-i",
        "data-text",
        "data-smp1",
        "data-smp-abort",
    ] {
        assert!(
            Message::decode(&get("decode_message", name)).is_ok(),
            "{name}"
        );
        let text = String::from_utf8(get("decode_base64", name)).unwrap();
        assert!(Message::from_base64(&text).is_ok(), "{name}");
    }
    for name in [
        "text",
        "smp1",
        "smp1-question",
        "smp2",
        "smp3",
        "smp4",
        "smp-abort",
    ] {
        let content = get("decode_content", name);
        assert!(Content::from_padded_bytes(&content).is_ok(), "{name}");
    }
    for name in ["group-profile", "epoch-key", "epoch-key-first"] {
        let content = get("decode_content", name);
        assert!(Content::from_padded_bytes(&content).is_ok(), "{name}");
    }
    for name in ["alice", "bob"] {
        let profile = ClientProfile::from_bytes(&get("decode_profile", name)).unwrap();
        assert_eq!(profile.validate(checks::NOW), Ok(()));
    }
}

/// Writes the seeds to `fuzz/corpus/<target>/seed-<name>`, and deletes other files of the
/// corpus with the same bytes as a seed (the copies `cargo fuzz cmin` keeps under a hash
/// name). Run by hand after minimizing, or after a change to the wire format or the fixture
/// (fuzz/README.md).
#[test]
#[ignore = "writes files under fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let root = corpus_root();
    let seeds = seeds::all();
    for (target, name, data) in &seeds {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
    let mut removed = 0;
    for (target, _) in checks::TARGETS {
        for file in corpus_files(&root.join(target)) {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("seed-") {
                continue;
            }
            let data = fs::read(&file).unwrap();
            if seeds
                .iter()
                .any(|(t, _, seed)| t == target && *seed == data)
            {
                fs::remove_file(&file).unwrap();
                removed += 1;
            }
        }
    }
    eprintln!(
        "wrote {} seeds under {} and removed {removed} copies",
        seeds.len(),
        root.display()
    );
}

/// The `session_receive` seeds do what their names say (so the corpus starts from deep
/// states, and a change to the script format cannot silently empty them).
#[test]
fn session_seeds_reach_their_states() {
    let seeds = seeds::all();
    let run = |name: &str| {
        let (_, _, data) = seeds
            .iter()
            .find(|(t, n, _)| *t == "session_receive" && n == name)
            .unwrap_or_else(|| panic!("no session seed {name}"));
        checks::run_session(data)
    };
    let text = run("text");
    assert_eq!((text.accepted, text.rejected), (1, 0));
    assert_eq!(run("text-via-wire").accepted, 1);
    let reordered = run("out-of-order-and-replay");
    assert_eq!((reordered.accepted, reordered.rejected), (3, 1));
    let steps = run("ratchet-steps");
    assert_eq!((steps.accepted, steps.rejected), (5, 0));
    assert_eq!(run("long-texts").accepted, 2);
    let same = run("smp-same-answer");
    assert_eq!((same.questions, same.succeeded, same.failed), (1, 2, 0));
    let different = run("smp-different-answer");
    assert_eq!(
        (different.questions, different.succeeded, different.failed),
        (1, 0, 2)
    );
    assert!(run("smp-abort-and-restart").aborted >= 1);
    let malicious = run("smp-malicious-steps");
    // Five injected steps, plus the aborts they provoke.
    assert!(
        malicious.accepted > 5 && malicious.aborted > 0,
        "{malicious:?}"
    );
    assert_eq!((malicious.malformed, malicious.succeeded), (0, 0));
    assert_eq!(run("smp-malformed").malformed, 3);
    let mutations = run("mutations");
    assert_eq!((mutations.accepted, mutations.rejected), (2, 8));
    let forgeries = run("forgeries");
    assert_eq!((forgeries.accepted, forgeries.rejected), (1, 4));
}

/// The room fixture is not vacuous: its genuine traffic shows every text exactly once,
/// whatever the order and however often it is replayed, and flipped copies show nothing.
#[test]
fn room_scripts_reach_what_their_names_say() {
    let root = corpus_root().join("room_receive");
    let run = |name: &str| checks::run_room(&fs::read(root.join(format!("seed-{name}"))).unwrap());
    for name in [
        "all-genuine-in-order",
        "all-genuine-twice",
        "all-genuine-reversed",
    ] {
        let (shown, private) = run(name);
        assert_eq!(shown.len(), 4, "{name}: {shown:?}");
        assert_eq!(private, 1, "{name}");
    }
    let (shown, private) = run("flipped-then-timers");
    assert!(shown.is_empty() && private == 0, "{shown:?}");
}
