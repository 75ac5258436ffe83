//! The samples of a run and the table made of them (text, Markdown, JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::WARMUP;

/// Samples by metric, per runtime (index into the subjects), with the
/// metric's unit.
#[derive(Default)]
pub struct Samples {
    order: Vec<String>,
    units: BTreeMap<String, &'static str>,
    by_metric: BTreeMap<String, [Vec<f64>; 2]>,
}

impl Samples {
    pub fn add(&mut self, metric: &str, unit: &'static str, subject: usize, value: f64) {
        if !self.by_metric.contains_key(metric) {
            self.order.push(metric.to_string());
            self.units.insert(metric.to_string(), unit);
        }
        self.by_metric.entry(metric.to_string()).or_default()[subject].push(value);
    }

    pub fn time(&mut self, metric: &str, subject: usize, d: Duration) {
        self.add(metric, "ms", subject, d.as_secs_f64() * 1e3);
    }
}

fn percentile(v: &[f64], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = (p * (s.len() - 1) + 50) / 100;
    s[i.min(s.len() - 1)]
}

pub fn table(samples: &Samples, reps: usize, notes: &[String]) -> (String, String, String) {
    let mut text = String::new();
    let mut md = String::from(
        "| metric | unit | corten p50 | corten p90 | containerd p50 | containerd p90 | ratio |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    let _ = writeln!(
        text,
        "{:<44} {:>5} {:>11} {:>11} {:>14} {:>14} {:>7}",
        "metric", "unit", "corten p50", "corten p90", "containerd p50", "containerd p90", "ratio"
    );
    for metric in &samples.order {
        let [a, b] = &samples.by_metric[metric];
        let unit = samples.units.get(metric).copied().unwrap_or("ms");
        let (a50, a90, b50, b90) = (
            percentile(a, 50),
            percentile(a, 90),
            percentile(b, 50),
            percentile(b, 90),
        );
        let ratio = a50 / b50;
        let _ = writeln!(
            text,
            "{metric:<44} {unit:>5} {a50:>11.2} {a90:>11.2} {b50:>14.2} {b90:>14.2} {ratio:>7.2}"
        );
        let _ = writeln!(
            md,
            "| {metric} | {unit} | {a50:.2} | {a90:.2} | {b50:.2} | {b90:.2} | {ratio:.2} |"
        );
        json.push(serde_json::json!({
            "metric": metric, "unit": unit, "n": [a.len(), b.len()],
            "corten": {"p50": a50, "p90": a90},
            "containerd": {"p50": b50, "p90": b90},
            "ratio": ratio,
        }));
    }
    let doc = serde_json::json!({
        "repetitions": reps, "warmup": WARMUP, "metrics": json, "notes": notes,
    });
    (
        text,
        md,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
}
