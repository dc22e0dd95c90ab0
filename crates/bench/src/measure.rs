//! Timing and output shared by every suite.
//!
//! A measurement is a closure `FnMut(n) -> Result<Duration>` that performs `n` operations
//! and returns the time spent in its timed part only: set-up that must happen per batch
//! (pre-made ciphertexts, fresh one-time keys, ...) runs inside the closure but outside the
//! clock. [`compare`] calibrates `n` so that one batch takes at least the minimum batch
//! time, runs one discarded warm-up batch per side, then alternates timed batches of ours
//! and the peer (so that drift of the machine affects both alike) and reports the median
//! nanoseconds per operation of each side.

use std::time::Duration;

use serde::Serialize;

/// Options every suite accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed batches per side and operation; the median batch is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batches: u32,
    /// Least duration of one timed batch, in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_ms: u64,
}

impl MeasureArgs {
    /// The measurement plan these options describe.
    pub fn plan(&self) -> Plan {
        Plan {
            batches: usize::try_from(self.batches).unwrap_or(5),
            min_batch: Duration::from_millis(self.batch_ms),
        }
    }
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Timed batches per side.
    pub batches: usize,
    /// Least timed duration of one batch.
    pub min_batch: Duration,
}

/// The result of measuring one side of one operation.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Operations per batch.
    pub iters: u64,
    /// Nanoseconds per operation of each timed batch, sorted.
    pub batch_ns: Vec<f64>,
}

impl Estimate {
    fn from_batches(iters: u64, batches: &[Duration]) -> Self {
        let n = iters.max(1) as f64;
        let mut batch_ns: Vec<f64> = batches.iter().map(|d| d.as_nanos() as f64 / n).collect();
        batch_ns.sort_by(f64::total_cmp);
        Self { iters, batch_ns }
    }

    /// Median nanoseconds per operation (mean of the two middle batches for an even count).
    pub fn median_ns(&self) -> f64 {
        let len = self.batch_ns.len();
        let mid = len / 2;
        match (
            self.batch_ns.get(mid.wrapping_sub(1)),
            self.batch_ns.get(mid),
        ) {
            (Some(a), Some(b)) if len.is_multiple_of(2) => (a + b) / 2.0,
            (_, Some(b)) => *b,
            _ => 0.0,
        }
    }

    /// Spread of the batches, `(max - min) / median`, as a fraction.
    pub fn spread(&self) -> f64 {
        let median = self.median_ns();
        match (self.batch_ns.first(), self.batch_ns.last()) {
            (Some(lo), Some(hi)) if median > 0.0 => (hi - lo) / median,
            _ => 0.0,
        }
    }
}

/// A batch runner: performs `n` operations, returns the timed duration.
pub type Runner<'a> = dyn FnMut(u64) -> anyhow::Result<Duration> + 'a;

/// Smallest `n` (grown geometrically from 1) whose batch takes at least `min_batch`.
/// The calibration runs double as warm-up.
fn calibrate(run: &mut Runner<'_>, min_batch: Duration) -> anyhow::Result<u64> {
    let target = min_batch.as_nanos().max(1);
    let mut n: u64 = 1;
    loop {
        let took = run(n)?.as_nanos();
        if took >= target {
            return Ok(n);
        }
        // Aim 20% past the target; grow at least 2x and at most 16x per step.
        let factor = (target * 12 / 10) / took.max(1) + 1;
        let factor = u64::try_from(factor.clamp(2, 16)).unwrap_or(16);
        n = n
            .checked_mul(factor)
            .ok_or_else(|| anyhow::anyhow!("calibration overflow"))?;
    }
}

/// Measures ours and the peer on the same operation, alternating their batches.
pub fn compare(
    plan: Plan,
    ours: &mut Runner<'_>,
    peer: &mut Runner<'_>,
) -> anyhow::Result<(Estimate, Estimate)> {
    let n_ours = calibrate(ours, plan.min_batch)?;
    let n_peer = calibrate(peer, plan.min_batch)?;
    // One more discarded warm-up batch each at the final size.
    ours(n_ours)?;
    peer(n_peer)?;
    let mut t_ours = Vec::with_capacity(plan.batches);
    let mut t_peer = Vec::with_capacity(plan.batches);
    for _ in 0..plan.batches {
        t_ours.push(ours(n_ours)?);
        t_peer.push(peer(n_peer)?);
    }
    Ok((
        Estimate::from_batches(n_ours, &t_ours),
        Estimate::from_batches(n_peer, &t_peer),
    ))
}

/// One compared operation.
#[derive(Debug, Clone)]
pub struct Row {
    /// Operation name, e.g. `encrypt_same_chain`.
    pub op: String,
    /// Our figures.
    pub ours: Estimate,
    /// The peer's figures.
    pub peer: Estimate,
}

/// The machine-readable form of a [`Row`]: one JSON object per line, keys in this order.
#[derive(Debug, Serialize)]
pub struct JsonLine<'a> {
    /// The suite, e.g. `pairwise`.
    pub suite: &'a str,
    /// The operation.
    pub op: &'a str,
    /// Our median nanoseconds per operation.
    pub ours_ns: u64,
    /// What we compare against, e.g. `vodozemac-olm`.
    pub peer: &'a str,
    /// The peer's median nanoseconds per operation.
    pub peer_ns: u64,
    /// `ours_ns / peer_ns`, rounded to three decimals (below 1.0: we are faster).
    pub ratio: f64,
    /// Room size, for suites measured at several sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
}

/// Nanoseconds rounded to an integer.
#[allow(clippy::cast_possible_truncation)] // positive, far below 2^53
fn round_ns(ns: f64) -> u64 {
    ns.round().max(0.0) as u64
}

/// `ours / peer` rounded to three decimals.
pub fn ratio(ours_ns: u64, peer_ns: u64) -> f64 {
    let r = ours_ns as f64 / peer_ns.max(1) as f64;
    (r * 1000.0).round() / 1000.0
}

/// The results of one suite.
#[derive(Debug, Clone)]
pub struct Report {
    /// Suite name.
    pub suite: String,
    /// Peer name as printed in the JSON lines.
    pub peer: String,
    /// Room size, for suites measured at several sizes.
    pub members: Option<usize>,
    /// One row per operation.
    pub rows: Vec<Row>,
}

impl Report {
    /// The JSON line of each row.
    pub fn json_lines(&self) -> anyhow::Result<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                let ours_ns = round_ns(row.ours.median_ns());
                let peer_ns = round_ns(row.peer.median_ns());
                let line = JsonLine {
                    suite: &self.suite,
                    op: &row.op,
                    ours_ns,
                    peer: &self.peer,
                    peer_ns,
                    ratio: ratio(ours_ns, peer_ns),
                    members: self.members,
                };
                Ok(serde_json::to_string(&line)?)
            })
            .collect()
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "suite {}: ours = cryptocat-protocol, peer = {}{}\n",
            self.suite,
            self.peer,
            self.members
                .map(|n| format!(", {n} members"))
                .unwrap_or_default()
        );
        out.push_str(&format!(
            "{:<20} {:>12} {:>7} {:>12} {:>7} {:>7}\n",
            "op", "ours ns", "±", "peer ns", "±", "ratio"
        ));
        for row in &self.rows {
            let ours_ns = round_ns(row.ours.median_ns());
            let peer_ns = round_ns(row.peer.median_ns());
            out.push_str(&format!(
                "{:<20} {:>12} {:>6.1}% {:>12} {:>6.1}% {:>7.3}\n",
                row.op,
                ours_ns,
                row.ours.spread() * 100.0,
                peer_ns,
                row.peer.spread() * 100.0,
                ratio(ours_ns, peer_ns),
            ));
        }
        out.push_str("(median of the timed batches; ± = (max - min) / median over the batches)\n");
        out
    }

    /// Prints the report: JSON lines or the table.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            for line in self.json_lines()? {
                println!("{line}");
            }
        } else {
            print!("{}", self.table());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let est = |ns: &[u64]| {
            Estimate::from_batches(
                1,
                &ns.iter()
                    .map(|&n| Duration::from_nanos(n))
                    .collect::<Vec<_>>(),
            )
        };
        Report {
            suite: "pairwise".into(),
            peer: "vodozemac-olm".into(),
            members: None,
            rows: vec![
                Row {
                    op: "encrypt_same_chain".into(),
                    ours: est(&[900, 1000, 1100]),
                    peer: est(&[3000]),
                },
                Row {
                    op: "handshake".into(),
                    ours: est(&[5, 1, 3, 2]),
                    peer: est(&[2]),
                },
            ],
        }
    }

    #[test]
    fn json_line_has_the_required_keys_in_order() {
        let lines = report().json_lines().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"suite":"pairwise","op":"encrypt_same_chain","ours_ns":1000,"peer":"vodozemac-olm","peer_ns":3000,"ratio":0.333}"#
        );
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            let mut expected = vec!["suite", "op", "ours_ns", "peer", "peer_ns", "ratio"];
            expected.sort_unstable();
            assert_eq!(keys, expected, "{line}");
            assert!(obj["suite"].is_string() && obj["op"].is_string() && obj["peer"].is_string());
            assert!(obj["ours_ns"].is_u64() && obj["peer_ns"].is_u64());
            assert!(obj["ratio"].is_f64());
            assert!(!line.contains('\n'));
        }
        // Even batch count: mean of the two middle ones; ratio rounded to 3 decimals.
        assert!(
            lines[1].contains(r#""ours_ns":3"#) && lines[1].contains(r#""ratio":1.5}"#),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn ratio_rounds_to_three_decimals() {
        assert_eq!(ratio(2, 3), 0.667);
        assert_eq!(ratio(1000, 1000), 1.0);
        assert_eq!(ratio(5, 0), 5.0);
    }

    #[test]
    fn compare_calibrates_to_the_minimum_batch_time() {
        let plan = Plan {
            batches: 3,
            min_batch: Duration::from_micros(200),
        };
        let mut ours = |n: u64| Ok(Duration::from_nanos(10 * n));
        let mut peer = |n: u64| Ok(Duration::from_nanos(20 * n));
        let (o, p) = compare(plan, &mut ours, &mut peer).unwrap();
        assert!(o.iters * 10 >= 200_000 && p.iters * 20 >= 200_000);
        assert_eq!(o.batch_ns.len(), 3);
        assert_eq!(o.median_ns(), 10.0);
        assert_eq!(p.median_ns(), 20.0);
        assert_eq!(o.spread(), 0.0);
    }
}
