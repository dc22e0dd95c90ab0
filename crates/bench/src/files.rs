//! The `files` suite (issue 18): the chunked file encryption of `cryptocat_protocol::file`
//! against raw AES-256-GCM, and its peak memory on a 1 GiB file.
//!
//! | op | ours | peer (`aes-gcm` 0.10, AES-256-GCM) |
//! | --- | --- | --- |
//! | `encrypt` | `FileEncryptor` over a 64 MiB buffer pushed in 64 KiB pieces (padding, a tag per chunk, SHA-256 of the plaintext, output copied into a reused buffer) | `encrypt_in_place_detached` of the same 64 MiB buffer in one call |
//! | `decrypt` | `FileDecryptor` over that body in pieces of one sealed chunk (the 2-byte header, then 64 KiB + 16 each, as a downloader reading whole chunks hands them over; pieces that straddle chunks go through a one-chunk buffer, one more copy: 0.565 of the peer instead of 0.68 on the machine of the first run), then `finish` (hash check) | `decrypt_in_place_detached` of the 64 MiB ciphertext in one call (a fresh copy is made outside the clock each time) |
//!
//! `sha256_alone` is informative: SHA-256 of the same buffer (which both of ours include)
//! against the same raw AES-256-GCM encryption.
//!
//! Each op prints `ours_mb_s`, `peer_mb_s`, `throughput_ratio` (= ours / peer; the goal is
//! at least 0.8) and, like the other suites, `ratio` = ours_ns / peer_ns per 64 MiB pass.
//!
//! `peak_rss_send` and `peak_rss_receive` run a child process (`files-stream`, hidden)
//! that encrypts a generated 1 GiB file into a sink (send), or encrypts it and feeds the
//! body straight into a decryptor (receive: the sender's side included, so an upper bound),
//! and report the child's `VmHWM` from `/proc/self/status`, next to a child that only
//! starts (`baseline`). Nothing is stored: the file comes from a generator. The goal is
//! under 64 MiB.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{anyhow, ensure, Context, Result};
use cryptocat_protocol::file::stream::{
    encrypt_all, FileDecryptor, FileEncryptor, FileKey, CHUNK_BYTES, HEADER_BYTES, TAG_BYTES,
};

use crate::measure::{compare, ratio, MeasureArgs};

/// Suite name in the output.
pub const SUITE: &str = "files";
/// Peer name in the output.
pub const PEER: &str = "aes-gcm-256-raw";

const BUFFER_BYTES: usize = 64 << 20;
const STREAM_BYTES: u64 = 1 << 30;
const MIB: f64 = 1024.0 * 1024.0;

/// Options of `files`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub measure: MeasureArgs,
}

/// Options of the hidden `files-stream` child.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// `baseline`, `send` or `receive`.
    #[arg(long)]
    side: String,
}

fn key() -> FileKey {
    FileKey::from_bytes([0x5a; 32])
}

/// The generated file: byte `i` of the stream, cheap and not all zero.
fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let at = offset.wrapping_add(i as u64);
        *b = (at ^ (at >> 13)).to_le_bytes()[0];
    }
}

fn median_ns(e: &crate::measure::Estimate) -> f64 {
    e.median_ns()
}

/// Runs the suite and prints its JSON lines (or the same objects, one per line, as text).
/// The peer of `encrypt` (and of `sha256_alone`): raw AES-256-GCM over `work`, `n` times.
fn raw_encrypt(
    aes: &Aes256Gcm,
    nonce: &Nonce<aes_gcm::aead::consts::U12>,
    work: &mut [u8],
    n: u64,
) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let tag = aes
            .encrypt_in_place_detached(nonce, b"", work)
            .map_err(|_| anyhow!("aes-gcm encrypt"))?;
        black_box((&*work, tag));
    }
    Ok(start.elapsed())
}

pub fn run(args: &Args) -> Result<()> {
    let plan = args.measure.plan();
    let mut plain = vec![0u8; BUFFER_BYTES];
    fill(&mut plain, 0);
    let key = key();
    let len = plain.len() as u64;
    let aes = Aes256Gcm::new(key.as_bytes().into());
    let nonce = Nonce::from([0u8; 12]);
    let mut lines = Vec::new();

    // encrypt
    eprintln!("{SUITE}: measuring encrypt");
    let mut out = Vec::with_capacity(2 * CHUNK_BYTES);
    let mut ours = |n: u64| -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let mut enc = FileEncryptor::new(&key, len).map_err(|e| anyhow!("{e}"))?;
            for piece in plain.chunks(CHUNK_BYTES) {
                out.clear();
                enc.update(piece, &mut out).map_err(|e| anyhow!("{e}"))?;
                black_box(&out);
            }
            loop {
                out.clear();
                let done = enc.finish_chunk(&mut out).map_err(|e| anyhow!("{e}"))?;
                if black_box(done).is_some() {
                    break;
                }
            }
        }
        Ok(start.elapsed())
    };
    let mut work = plain.clone();
    let mut peer = |n: u64| raw_encrypt(&aes, &nonce, &mut work, n);
    let (o, p) = compare(plan, &mut ours, &mut peer)?;
    lines.push(line("encrypt", median_ns(&o), median_ns(&p)));

    // decrypt
    eprintln!("{SUITE}: measuring decrypt");
    let (body, hash) = encrypt_all(&key, &plain).map_err(|e| anyhow!("{e}"))?;
    let mut ours = |n: u64| -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let mut dec = FileDecryptor::new(&key, len, hash).map_err(|e| anyhow!("{e}"))?;
            let (header, chunks) = body.split_at(HEADER_BYTES.min(body.len()));
            dec.update(header, &mut out).map_err(|e| anyhow!("{e}"))?;
            for piece in chunks.chunks(CHUNK_BYTES + TAG_BYTES) {
                out.clear();
                dec.update(piece, &mut out).map_err(|e| anyhow!("{e}"))?;
                black_box(&out);
            }
            dec.finish().map_err(|e| anyhow!("{e}"))?;
        }
        Ok(start.elapsed())
    };
    let mut sealed = plain.clone();
    let tag = aes
        .encrypt_in_place_detached(&nonce, b"", &mut sealed)
        .map_err(|_| anyhow!("aes-gcm encrypt"))?;
    let mut peer = |n: u64| -> Result<Duration> {
        let mut total = Duration::ZERO;
        for _ in 0..n {
            work.copy_from_slice(&sealed);
            let start = Instant::now();
            aes.decrypt_in_place_detached(&nonce, b"", &mut work, &tag)
                .map_err(|_| anyhow!("aes-gcm decrypt"))?;
            total += start.elapsed();
            black_box(&work);
        }
        Ok(total)
    };
    let (o, p) = compare(plan, &mut ours, &mut peer)?;
    lines.push(line("decrypt", median_ns(&o), median_ns(&p)));
    // What the plaintext hash alone costs on the same buffer (part of both ours above).
    let mut hash_only = |n: u64| -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            black_box(<sha2::Sha256 as sha2::Digest>::digest(&plain));
        }
        Ok(start.elapsed())
    };
    let mut peer = |n: u64| raw_encrypt(&aes, &nonce, &mut work, n);
    let (o, p) = compare(plan, &mut hash_only, &mut peer)?;
    let mut sha_line = line("sha256_alone", median_ns(&o), median_ns(&p));
    if let Some(obj) = sha_line.as_object_mut() {
        obj.remove("goal_min_throughput_ratio");
    }
    lines.push(sha_line);
    drop((plain, body, sealed, work));

    // peak memory on a 1 GiB file, each in a child of its own
    let baseline = child_hwm_kb("baseline")?;
    for side in ["send", "receive"] {
        eprintln!("{SUITE}: streaming 1 GiB ({side})");
        let kb = child_hwm_kb(side)?;
        lines.push(serde_json::json!({
            "suite": SUITE,
            "op": format!("peak_rss_{side}"),
            "file_bytes": STREAM_BYTES,
            "peak_rss_mib": round2(kb as f64 / 1024.0),
            "baseline_rss_mib": round2(baseline as f64 / 1024.0),
            "goal_max_mib": 64,
        }));
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[allow(clippy::cast_possible_truncation)] // positive, far below 2^53
fn line(op: &str, ours_ns: f64, peer_ns: f64) -> serde_json::Value {
    let mb_s = |ns: f64| round2(BUFFER_BYTES as f64 / MIB / (ns / 1e9));
    let (o, p) = (ours_ns.round() as u64, peer_ns.round() as u64);
    serde_json::json!({
        "suite": SUITE,
        "op": op,
        "buffer_bytes": BUFFER_BYTES,
        "ours_ns": o,
        "peer": PEER,
        "peer_ns": p,
        "ratio": ratio(o, p),
        "ours_mb_s": mb_s(ours_ns),
        "peer_mb_s": mb_s(peer_ns),
        "throughput_ratio": (peer_ns / ours_ns.max(1.0) * 1000.0).round() / 1000.0,
        "goal_min_throughput_ratio": 0.8,
    })
}

fn child_hwm_kb(side: &str) -> Result<u64> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["files-stream", "--side", side])
        .output()
        .context("running files-stream")?;
    ensure!(
        out.status.success(),
        "files-stream {side} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    text.trim()
        .parse()
        .with_context(|| format!("files-stream {side} printed {text:?}"))
}

/// The child: streams a generated 1 GiB file and prints its `VmHWM` in kB.
pub fn stream(args: &StreamArgs) -> Result<()> {
    let key = key();
    let mut piece = vec![0u8; CHUNK_BYTES];
    let mut body = Vec::with_capacity(2 * CHUNK_BYTES);
    let mut plain_out = Vec::with_capacity(2 * CHUNK_BYTES);
    // Encrypts the generated file, handing each piece of body to `sink`.
    let mut send = |sink: &mut dyn FnMut(&[u8]) -> Result<()>| -> Result<[u8; 32]> {
        let mut enc = FileEncryptor::new(&key, STREAM_BYTES).map_err(|e| anyhow!("{e}"))?;
        let mut at = 0u64;
        while at < STREAM_BYTES {
            fill(&mut piece, at);
            body.clear();
            enc.update(&piece, &mut body).map_err(|e| anyhow!("{e}"))?;
            sink(&body)?;
            at += piece.len() as u64;
        }
        loop {
            body.clear();
            let done = enc.finish_chunk(&mut body).map_err(|e| anyhow!("{e}"))?;
            sink(&body)?;
            if let Some(hash) = done {
                return Ok(hash);
            }
        }
    };
    match args.side.as_str() {
        "baseline" => {}
        "send" => {
            let mut total = 0u64;
            send(&mut |b| {
                total += b.len() as u64;
                Ok(())
            })?;
            ensure!(total > STREAM_BYTES);
        }
        "receive" => {
            // The hash comes in the offer; here, from a first pass.
            let hash = send(&mut |_| Ok(()))?;
            let mut dec =
                FileDecryptor::new(&key, STREAM_BYTES, hash).map_err(|e| anyhow!("{e}"))?;
            let mut received = 0u64;
            send(&mut |b| {
                plain_out.clear();
                dec.update(b, &mut plain_out).map_err(|e| anyhow!("{e}"))?;
                received += plain_out.len() as u64;
                Ok(())
            })?;
            dec.finish().map_err(|e| anyhow!("{e}"))?;
            ensure!(received == STREAM_BYTES);
        }
        other => return Err(anyhow!("unknown side {other}")),
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM"))?;
    println!("{kb}");
    Ok(())
}
