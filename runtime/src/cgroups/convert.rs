//! OCI resource values to the strings cgroup files take, checked before they
//! reach the kernel so a bad request is an InvalidArgument naming the value.

use super::error::{Error, Result};

/// v1 `cpu.shares` range, and the v2 `cpu.weight` range.
const SHARES_MIN: u64 = 2;
const SHARES_MAX: u64 = 262_144;
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
