//! A pod's cgroup limits: what CRI asks for (the sum of its containers'
//! resources, and the pod's overhead) and what its cgroup gets.

use crate::spec::Resources;

/// The CFS period the kernel uses when none is set (microseconds).
const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// The largest cpu.shares the kernel takes (cgroup v1 scale).
const MAX_CPU_SHARES: u64 = 262_144;

/// The limits of a pod's cgroup: `resources` (the sum of its containers')
/// plus `overhead` (the pod's own cost, `RuntimeClass.overhead`).
///
/// - memory: the sum, when `resources` has a limit (no limit there means
///   the pod is unbounded, whatever its overhead);
/// - cpu shares: the sum of those set (at most the kernel's maximum);
/// - cpu quota: the sum at `resources`' period (the kernel's default when
///   unset), `overhead`'s quota rescaled when its period differs; again
///   only when `resources` has a quota;
/// - cpuset cpus and mems: `resources`'; pids and oom_score_adj: none (not
///   pod-level in CRI);
/// - unified (cgroup v2 files): `overhead`'s, overridden by `resources`'.
pub fn pod_cgroup_resources(resources: &Resources, overhead: &Resources) -> Resources {
    let memory_limit_bytes = resources
        .memory_limit_bytes
        .filter(|m| *m > 0)
        .map(|m| m.saturating_add(overhead.memory_limit_bytes.unwrap_or(0).max(0)));
    let cpu_shares = match (resources.cpu_shares, overhead.cpu_shares) {
        (None, None) => None,
        (a, b) => Some(
            a.unwrap_or(0)
                .saturating_add(b.unwrap_or(0))
                .min(MAX_CPU_SHARES),
        ),
    };
    let period = resources.cpu_period.filter(|p| *p > 0);
    let cpu_quota = resources.cpu_quota.filter(|q| *q > 0).map(|q| {
        let at = period.unwrap_or(DEFAULT_CPU_PERIOD);
        let extra = overhead.cpu_quota.filter(|q| *q > 0).map_or(0, |oq| {
            let from = overhead
                .cpu_period
                .filter(|p| *p > 0)
                .unwrap_or(DEFAULT_CPU_PERIOD);
            // Same share of a CPU at the other period, rounded up.
            let (num, den) = (i128::from(oq) * i128::from(at), i128::from(from));
            let scaled = (num + den - 1) / den;
            i64::try_from(scaled).unwrap_or(i64::MAX)
        });
        q.saturating_add(extra)
    });
    let mut unified = overhead.unified.clone();
    unified.extend(resources.unified.clone());
    Resources {
        cpu_shares,
        cpu_quota,
        cpu_period: period,
        cpuset_cpus: resources.cpuset_cpus.clone(),
        cpuset_mems: resources.cpuset_mems.clone(),
        memory_limit_bytes,
        pids_limit: None,
        oom_score_adj: None,
        unified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    #[test]
    fn sums_what_is_limited() {
        let resources = Resources {
            memory_limit_bytes: Some(64 * MIB),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0".into()),
            oom_score_adj: Some(-10),
            ..Resources::default()
        };
        let overhead = Resources {
            memory_limit_bytes: Some(8 * MIB),
            cpu_shares: Some(10),
            cpu_quota: Some(5_000),
            cpu_period: Some(50_000),
            cpuset_cpus: Some("1".into()),
            ..Resources::default()
        };
        let r = pod_cgroup_resources(&resources, &overhead);
        assert_eq!(r.memory_limit_bytes, Some(72 * MIB));
        assert_eq!(r.cpu_shares, Some(522));
        // 5ms per 50ms is 10ms per 100ms.
        assert_eq!(r.cpu_quota, Some(60_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(r.oom_score_adj, None);
    }

    #[test]
    fn overhead_alone_limits_nothing_but_shares() {
        let overhead = Resources {
            memory_limit_bytes: Some(8 * MIB),
            cpu_shares: Some(10),
            cpu_quota: Some(5_000),
            ..Resources::default()
        };
        let r = pod_cgroup_resources(&Resources::default(), &overhead);
        assert_eq!(r.memory_limit_bytes, None);
        assert_eq!(r.cpu_quota, None);
        assert_eq!(r.cpu_shares, Some(10));
        assert_eq!(
            pod_cgroup_resources(&Resources::default(), &Resources::default()),
            Resources::default()
        );
    }

    #[test]
    fn default_periods_and_extremes() {
        let resources = Resources {
            cpu_quota: Some(20_000),
            memory_limit_bytes: Some(i64::MAX),
            cpu_shares: Some(MAX_CPU_SHARES),
            ..Resources::default()
        };
        let overhead = Resources {
            cpu_quota: Some(1_000),
            cpu_period: Some(3),
            memory_limit_bytes: Some(MIB),
            cpu_shares: Some(2),
            ..Resources::default()
        };
        let r = pod_cgroup_resources(&resources, &overhead);
        assert_eq!(r.cpu_period, None);
        assert_eq!(r.cpu_quota, Some(20_000 + 33_333_334));
        assert_eq!(r.memory_limit_bytes, Some(i64::MAX));
        assert_eq!(r.cpu_shares, Some(MAX_CPU_SHARES));
    }

    #[test]
    fn unified_of_resources_wins() {
        let resources = Resources {
            unified: [("memory.high".to_string(), "100".to_string())].into(),
            ..Resources::default()
        };
        let overhead = Resources {
            unified: [
                ("memory.high".to_string(), "1".to_string()),
                ("pids.max".to_string(), "10".to_string()),
            ]
            .into(),
            ..Resources::default()
        };
        let r = pod_cgroup_resources(&resources, &overhead);
        assert_eq!(r.unified["memory.high"], "100");
        assert_eq!(r.unified["pids.max"], "10");
    }
}
