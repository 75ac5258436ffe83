//! Reading kubelet's Prometheus text metrics: the counters the tests wait
//! on (pods and containers started, pod syncs, probe results).

/// The sum of every sample of metric `name` whose labels include all of
/// `labels`; 0 when there is none (a counter vector shows no series until
/// it first counts).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse)
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

/// `name{k="v",...} value [timestamp]`, or `name value`.
fn parse(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    let (name, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (&line[..open], &line[open..=close])
        }
        None => (line.split_whitespace().next()?, ""),
    };
    let after = &line[name.len() + rest.len()..];
    let value = after.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels: labels(rest.trim_start_matches('{').trim_end_matches('}')),
        value,
    })
}

/// `k="v",k2="v2"`, with `\"` and `\\` escapes in values.
fn labels(mut s: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    while let Some(eq) = s.find("=\"") {
        let key = s[..eq].trim_start_matches(',').trim();
        let mut value = String::new();
        let mut chars = s[eq + 2..].char_indices();
        let mut end = s.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key, value));
        s = &s[end.min(s.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP kubelet_started_pods_total Cumulative number of pods started
# TYPE kubelet_started_pods_total counter
kubelet_started_pods_total 3
kubelet_started_containers_total{container_type="container"} 4
kubelet_started_containers_total{container_type="init_container"} 1
prober_probe_total{container="web",namespace="default",pod="p-n",pod_uid="u",probe_type="Readiness",result="successful"} 7
prober_probe_total{container="web",namespace="default",pod="p-n",pod_uid="u",probe_type="Readiness",result="failed"} 2
odd{a="x\"y,z=\"w"} 1.5
"#;

    #[test]
    fn sums_samples_matching_labels() {
        assert_eq!(sum(TEXT, "kubelet_started_pods_total", &[]), 3.0);
        assert_eq!(sum(TEXT, "kubelet_started_containers_total", &[]), 5.0);
        assert_eq!(
            sum(
                TEXT,
                "kubelet_started_containers_total",
                &[("container_type", "container")]
            ),
            4.0
        );
        let ok = [("container", "web"), ("result", "successful")];
        assert_eq!(sum(TEXT, "prober_probe_total", &ok), 7.0);
        assert_eq!(sum(TEXT, "prober_probe_total", &[("pod", "p-n")]), 9.0);
        assert_eq!(sum(TEXT, "absent_total", &[]), 0.0);
        assert_eq!(sum(TEXT, "odd", &[("a", "x\"y,z=\"w")]), 1.5);
    }
}
