//! What a run of the suite did, spec by spec, read from the JSON report
//! ginkgo writes (`--ginkgo.json-report`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// How one spec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Failed, panicked, timed out, interrupted or aborted.
    Failed,
    /// The spec ran and skipped itself (a feature it needs is off, say).
    SkippedItself,
    /// Not run: outside the focus, or skipped by name.
    NotSelected,
}

/// One spec of the report.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Ginkgo's full text: the containers' texts and the spec's, spaced.
    pub name: String,
    pub outcome: Outcome,
    /// Ginkgo's state as written (`passed`, `failed`, `timedout`, ...).
    pub state: String,
    /// The failure or skip message, and where it was raised.
    pub message: String,
    pub location: String,
    pub run_time: Duration,
}

/// Every spec of a run, and what failed outside of specs (the suite's
/// setup and teardown nodes).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub specs: Vec<Spec>,
    pub suite_failures: Vec<String>,
}

/// The counts of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Specs that ran (passed, failed or skipped themselves).
    pub ran: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped_itself: usize,
    pub not_selected: usize,
}

impl Report {
    /// Reads the JSON report ginkgo wrote at `path`.
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the suite's report {}", path.display()))?;
        Report::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Parses a ginkgo v2 JSON report (an array of suite reports).
    pub fn parse(text: &str) -> Result<Report> {
        let suites: Value = serde_json::from_str(text).context("the report is not JSON")?;
        let Some(suites) = suites.as_array() else {
            bail!("the report is not an array of suite reports");
        };
        let mut report = Report::default();
        for suite in suites {
            for spec in suite["SpecReports"].as_array().into_iter().flatten() {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let mut parts: Vec<String> = spec["ContainerHierarchyTexts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                parts.push(text(&spec["LeafNodeText"]));
                parts.retain(|p| !p.is_empty());
                let name = parts.join(" ");
                let state = text(&spec["State"]);
                let failure = &spec["Failure"];
                let message = text(&failure["Message"]);
                let location = match failure["Location"]["FileName"].as_str() {
                    Some(file) => format!(
                        "{}:{}",
                        file,
                        failure["Location"]["LineNumber"].as_u64().unwrap_or(0)
                    ),
                    None => String::new(),
                };
                let run_time = Duration::from_nanos(spec["RunTime"].as_u64().unwrap_or(0));
                if spec["LeafNodeType"].as_str() != Some("It") {
                    // The suite's own nodes (SynchronizedBeforeSuite, ...).
                    if !matches!(state.as_str(), "passed" | "skipped" | "") {
                        report.suite_failures.push(format!(
                            "{} {state}: {message} ({location})",
                            text(&spec["LeafNodeType"])
                        ));
                    }
                    continue;
                }
                let outcome = match state.as_str() {
                    "passed" => Outcome::Passed,
                    "skipped" if failure.is_object() && !message.is_empty() => {
                        Outcome::SkippedItself
                    }
                    "skipped" | "pending" => Outcome::NotSelected,
                    _ => Outcome::Failed,
                };
                report.specs.push(Spec {
                    name,
                    outcome,
                    state,
                    message,
                    location,
                    run_time,
                });
            }
        }
        Ok(report)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for spec in &self.specs {
            match spec.outcome {
                Outcome::Passed => s.passed += 1,
                Outcome::Failed => s.failed += 1,
                Outcome::SkippedItself => s.skipped_itself += 1,
                Outcome::NotSelected => s.not_selected += 1,
            }
        }
        s.ran = s.passed + s.failed + s.skipped_itself;
        s
    }

    /// The specs that ended with `outcome`.
    pub fn with(&self, outcome: Outcome) -> impl Iterator<Item = &Spec> {
        self.specs.iter().filter(move |s| s.outcome == outcome)
    }

    /// The spec named `name`, if the suite has it.
    pub fn spec(&self, name: &str) -> Option<&Spec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// `s` with the characters of Go's regexp syntax escaped, so that a spec
/// name matches only itself in `--ginkgo.focus`/`--ginkgo.skip`.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regex for `--ginkgo.focus`/`--ginkgo.skip` that matches the spec
/// named `name` and no other. Ginkgo matches against more than the name
/// (the text it matches has something before the name: `^` alone selects
/// nothing, as a dry run of `e2e_node.test` shows), so the start is
/// anchored at the text's start or a blank.
pub fn exactly(name: &str) -> String {
    format!(r"(^|\s){}$", regex_escape(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"[{"SpecReports": [
      {"LeafNodeType": "SynchronizedBeforeSuite", "LeafNodeText": "", "State": "passed"},
      {"ContainerHierarchyTexts": ["[sig-node] Pods", "when x"], "LeafNodeText": "should y [NodeConformance]",
       "LeafNodeType": "It", "State": "passed", "RunTime": 2000000000},
      {"ContainerHierarchyTexts": ["[sig-node] Pods"], "LeafNodeText": "fails", "LeafNodeType": "It",
       "State": "failed", "Failure": {"Message": "boom", "Location": {"FileName": "a.go", "LineNumber": 7}}},
      {"ContainerHierarchyTexts": ["[sig-node] Pods"], "LeafNodeText": "times out", "LeafNodeType": "It",
       "State": "timedout", "Failure": {"Message": "slow"}},
      {"ContainerHierarchyTexts": ["[sig-node] Gates"], "LeafNodeText": "needs a gate", "LeafNodeType": "It",
       "State": "skipped", "Failure": {"Message": "feature gate X is off"}},
      {"ContainerHierarchyTexts": ["[sig-node] Other"], "LeafNodeText": "not focused", "LeafNodeType": "It",
       "State": "skipped"},
      {"LeafNodeType": "SynchronizedAfterSuite", "LeafNodeText": "", "State": "failed",
       "Failure": {"Message": "teardown", "Location": {"FileName": "s.go", "LineNumber": 1}}}
    ]}]"#;

    #[test]
    fn reads_outcomes_names_and_suite_failures() {
        let r = Report::parse(REPORT).expect("parse");
        assert_eq!(
            r.summary(),
            Summary {
                ran: 4,
                passed: 1,
                failed: 2,
                skipped_itself: 1,
                not_selected: 1
            }
        );
        let s = r
            .spec("[sig-node] Pods when x should y [NodeConformance]")
            .expect("spec by full name");
        assert_eq!(s.outcome, Outcome::Passed);
        assert_eq!(s.run_time, Duration::from_secs(2));
        let f = r.spec("[sig-node] Pods fails").expect("failed spec");
        assert_eq!(
            (f.message.as_str(), f.location.as_str()),
            ("boom", "a.go:7")
        );
        assert_eq!(r.with(Outcome::Failed).count(), 2);
        assert_eq!(r.suite_failures.len(), 1, "{:?}", r.suite_failures);
        assert!(r.suite_failures[0].contains("teardown (s.go:1)"));
    }

    #[test]
    fn rejects_what_is_not_a_report() {
        assert!(Report::parse("{}").is_err());
        assert!(Report::parse("not json").is_err());
    }

    #[test]
    fn escapes_regex_syntax() {
        assert_eq!(
            regex_escape("a [Serial] (x) 1.2 *?"),
            r"a \[Serial\] \(x\) 1\.2 \*\?"
        );
        assert_eq!(exactly("a [b]"), r"(^|\s)a \[b\]$");
    }
}
