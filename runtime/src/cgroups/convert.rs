//! OCI resource values to the strings cgroup files take, checked before they
//! reach the kernel so a bad request is an InvalidArgument naming the value.

use oci_spec::runtime::LinuxResources;

use super::error::{Error, Result};

/// v1 `cpu.shares` range, and the v2 `cpu.weight` range.
const SHARES_MIN: u64 = 2;
const SHARES_MAX: u64 = 262_144;
/// The CFS period the kernel takes, in µs (1 ms to 1 s), and the smallest
/// quota (1 ms): `cpu.cfs_period_us`/`cpu.cfs_quota_us` and `cpu.max`
/// answer EINVAL outside them.
const PERIOD_MIN: u64 = 1_000;
const PERIOD_MAX: u64 = 1_000_000;
const QUOTA_MIN: i64 = 1_000;
const WEIGHT_MIN: u64 = 1;
const WEIGHT_MAX: u64 = 10_000;

/// Converts v1 cpu shares to a v2 cpu weight.
///
/// The linear map of [2, 262144] onto [1, 10000] that runc uses and the
/// Kubernetes cgroup v2 design (KEP-2254) documents:
/// `weight = 1 + (shares - 2) * 9999 / 262142`, with shares clamped into
/// range first. So 2 -> 1, 1024 -> 39, 262144 -> 10000. (Newer crun uses a
/// curve that sends 1024 to 100; we keep runc's so a pod gets the same
/// weight under corten as under containerd + runc.)
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(SHARES_MIN, SHARES_MAX);
    let w = WEIGHT_MIN + (s - SHARES_MIN) * (WEIGHT_MAX - WEIGHT_MIN) / (SHARES_MAX - SHARES_MIN);
    w.clamp(WEIGHT_MIN, WEIGHT_MAX)
}

/// Checks every value of `r` that [`crate::cgroups::Cgroup::apply`] would
/// write, without writing anything: what the kernel would refuse (or, for
/// cpu shares, silently clamp, which runc reports as an error) is an
/// InvalidArgument naming the value. Unset values (`None`, and for shares
/// and period 0, for the quota 0 or negative) pass. Host-dependent refusals
/// (a controller that is not mounted) are left to `apply`.
///
/// The one place these rules live: `apply` runs it first (so a bad update
/// writes nothing), and the CRI layer runs it before a container is made.
pub fn check(r: &LinuxResources) -> Result<()> {
    let bad = |what, value: String, reason| Error::InvalidValue {
        what,
        value,
        reason,
    };
    if let Some(m) = r.memory() {
        if let Some(limit) = m.limit() {
            memory_limit(limit, true)?;
        }
    }
    if let Some(cpu) = r.cpu() {
        if let Some(s) = cpu.shares().filter(|s| *s > 0) {
            if !(SHARES_MIN..=SHARES_MAX).contains(&s) {
                return Err(bad("cpu.shares", s.to_string(), "must be in 2..=262144"));
            }
        }
        if let Some(p) = cpu.period().filter(|p| *p > 0) {
            if !(PERIOD_MIN..=PERIOD_MAX).contains(&p) {
                return Err(bad(
                    "cpu.cfs_period_us",
                    p.to_string(),
                    "must be in 1000..=1000000 (1 ms to 1 s)",
                ));
            }
        }
        if let Some(q) = cpu.quota().filter(|q| (1..QUOTA_MIN).contains(q)) {
            return Err(bad(
                "cpu.cfs_quota_us",
                q.to_string(),
                "must be at least 1000 (1 ms), or 0/-1 for no limit",
            ));
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
            cpuset_list("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.trim().is_empty()) {
            cpuset_list("cpuset.mems", mems)?;
        }
    }
    if let Some(rules) = r.devices() {
        super::devices::DeviceRules::from_oci(rules)?;
    }
    if let Some(map) = r.unified() {
        for (k, v) in map {
            unified_key(k)?;
            if v.contains(['\n', '\0']) {
                return Err(bad(
                    "unified resource value",
                    format!("{k}={v}"),
                    "must be one line without NUL",
                ));
            }
        }
    }
    Ok(())
}

/// A memory limit for `memory.limit_in_bytes` (v1) or `memory.max` (v2):
/// negative means unlimited; zero is refused (it would kill at once).
pub(crate) fn memory_limit(limit: i64, v2: bool) -> Result<String> {
    match limit {
        l if l < 0 => Ok(if v2 { "max".into() } else { "-1".into() }),
        0 => Err(Error::InvalidValue {
            what: "memory limit",
            value: limit.to_string(),
            reason: "must be positive (or negative for unlimited)",
        }),
        l => Ok(l.to_string()),
    }
}

/// A pids limit: zero or negative means unlimited, as in runc.
pub(crate) fn pids_limit(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

/// v2 `cpu.max`: "quota period"; a quota of zero or less is "max".
pub(crate) fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None if period.is_some() => "max".to_owned(),
        None => return None,
    };
    Some(match period {
        Some(p) => format!("{q} {p}"),
        None => q,
    })
}

/// Checks a cpuset list such as `0-3,6,8-9` (cpus or memory nodes).
pub(crate) fn cpuset_list(what: &'static str, value: &str) -> Result<String> {
    let bad = |reason| Error::InvalidValue {
        what,
        value: value.to_owned(),
        reason,
    };
    let v = value.trim();
    if v.is_empty() {
        return Err(bad("empty list"));
    }
    for part in v.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u32 = lo.parse().map_err(|_| bad("expected N or N-M items"))?;
        let hi: u32 = hi.parse().map_err(|_| bad("expected N or N-M items"))?;
        if lo > hi {
            return Err(bad("range runs backwards"));
        }
    }
    Ok(v.to_owned())
}

/// Checks a cgroup path given by a caller and splits it into components.
/// Leading and trailing slashes are optional; `.`/`..`/empty parts are not.
pub(crate) fn path_components(path: &str) -> Result<Vec<String>> {
    let bad = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(bad("the root cgroup cannot be managed"));
    }
    trimmed
        .split('/')
        .map(|c| match c {
            "" => Err(bad("empty component")),
            "." | ".." => Err(bad("relative component")),
            c => Ok(c.to_owned()),
        })
        .collect()
}

/// Checks a key of OCI `linux.resources.unified` (a file name in the cgroup
/// directory such as `memory.high`).
pub(crate) fn unified_key(key: &str) -> Result<&str> {
    let ok = !key.is_empty()
        && key.contains('.')
        && !key.contains(|c: char| c.is_control() || c.is_whitespace())
        && !key.contains('/')
        && !key.starts_with("cgroup.")
        && key != "."
        && key != "..";
    if ok {
        Ok(key)
    } else {
        Err(Error::InvalidValue {
            what: "unified resource key",
            value: key.to_owned(),
            reason: "must be a controller file name such as memory.high",
        })
    }
}
