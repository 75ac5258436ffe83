//! Container records: what the daemon keeps of each container in the
//! metadata store, and the pure rules over them (filters, exit reasons,
//! id prefixes, stop signals).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::ids::{ContainerId, ImageId, SandboxId};
use crate::sandbox::PodContext;
use crate::shim::ExitStatus;
use crate::spec::ContainerConfig;

/// Where a container is in its life, as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process has exited.
    Exited,
    /// Its shim is gone without a word (e.g. after a reboot).
    Unknown,
}

/// One container, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container id (64 hex characters).
    pub id: ContainerId,
    /// The pod it belongs to.
    pub pod_id: SandboxId,
    /// CRI metadata name.
    pub name: String,
    /// CRI metadata attempt.
    pub attempt: u32,
    /// The image as the request named it.
    pub image: String,
    /// The resolved image id (`sha256:…`).
    pub image_id: ImageId,
    /// A digest reference of the image (`repo@sha256:…`), or its id.
    pub image_ref: String,
    /// The layer snapshots the container runs on (chain ids, bottom first).
    pub chain_ids: Vec<crate::image::Digest>,
    /// The image's `StopSignal`, if it has one.
    pub stop_signal: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The log path as the request gave it (relative to the pod's log directory).
    pub log_path: String,
    /// The log file the shim writes, if any.
    pub log_file: Option<PathBuf>,
    /// Where it is.
    pub state: ContainerState,
    /// Unix nanoseconds of creation.
    pub created_at_ns: i64,
    /// Unix nanoseconds of start (0 before).
    pub started_at_ns: i64,
    /// Unix nanoseconds of exit (0 before).
    pub finished_at_ns: i64,
    /// The exit code, once exited.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, or empty.
    pub reason: String,
    /// A human-readable word on the end, if any.
    pub message: String,
    /// The init's pid while it runs (host pid namespace).
    pub pid: i32,
    /// The mounts the request asked for (the pod's own are not among them).
    #[serde(default)]
    pub mounts: Vec<crate::spec::MountConfig>,
    /// The user the process runs as, as resolved at creation.
    #[serde(default)]
    pub user: ProcessUser,
    /// The pod as the container saw it at creation.
    pub pod: PodContext,
    /// The container's configuration.
    pub config: ContainerConfig,
}

/// The identity a container's process runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
}

impl ContainerRecord {
    /// The stop signal in effect, by name: the request's, else the image's
    /// (`None`: SIGTERM). See [`stop_signal`] for its number.
    pub fn stop_signal_in_effect(&self) -> Option<&str> {
        self.config
            .stop_signal
            .as_deref()
            .or(self.stop_signal.as_deref())
            .filter(|s| !s.trim().is_empty())
    }

    /// Records the end of the container's process (once; later calls change
    /// nothing and return false).
    pub fn set_exited(&mut self, exit: &ExitStatus) -> bool {
        if matches!(self.state, ContainerState::Exited) {
            return false;
        }
        self.state = ContainerState::Exited;
        self.exit_code = exit.code;
        self.finished_at_ns = exit.finished_at_ns;
        self.reason = reason(exit).to_string();
        if let Some(how) = exit.shim_lost.as_ref().or(exit.not_created.as_ref()) {
            self.message = how.clone();
        }
        self.pid = 0;
        true
    }
}

/// CRI's reason of an exit: `StartError` (the shim could not create it,
/// containerd's word), `OOMKilled`, `ShimDied` (the shim was gone before
/// the container, which the daemon then killed), `Completed` (code 0) or
/// `Error`.
pub fn reason(exit: &ExitStatus) -> &'static str {
    if exit.not_created.is_some() {
        "StartError"
    } else if exit.oom_killed {
        "OOMKilled"
    } else if exit.shim_lost.is_some() {
        "ShimDied"
    } else if exit.code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// Which containers a list wants; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// The container id or a prefix of it.
    pub id: Option<String>,
    /// The state.
    pub state: Option<ContainerState>,
    /// The pod id or a prefix of it.
    pub pod_id: Option<String>,
    /// Labels the container must have, with these values.
    pub labels: BTreeMap<String, String>,
}

impl ContainerFilter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &ContainerRecord) -> bool {
        self.id
            .as_ref()
            .is_none_or(|id| r.id.starts_with(id.as_str()))
            && self.state.is_none_or(|s| s == r.state)
            && self
                .pod_id
                .as_ref()
                .is_none_or(|p| r.pod_id.starts_with(p.as_str()))
            && self.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
    }
}

/// The signal number of an image's `StopSignal` (`SIGQUIT`, `QUIT`, `3`,
/// `SIGRTMIN+3`, `SIGRTMAX-2`); SIGTERM when there is none.
pub fn stop_signal(name: Option<&str>) -> Result<i32, Error> {
    use nix::sys::signal::Signal;
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(Signal::SIGTERM as i32);
    };
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n)
            .map(|s| s as i32)
            .or_else(|_| realtime(n).ok_or(()))
            .map_err(|()| bad_signal(name));
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some(rest) = full.strip_prefix("SIGRTMIN") {
        let offset: i32 = match rest.strip_prefix('+') {
            Some(n) => n.parse().map_err(|_| bad_signal(name))?,
            None if rest.is_empty() => 0,
            None => return Err(bad_signal(name)),
        };
        return realtime(nix::libc::SIGRTMIN() + offset).ok_or_else(|| bad_signal(name));
    }
    if let Some(rest) = full.strip_prefix("SIGRTMAX") {
        let offset: i32 = match rest.strip_prefix('-') {
            Some(n) => n.parse().map_err(|_| bad_signal(name))?,
            None if rest.is_empty() => 0,
            None => return Err(bad_signal(name)),
        };
        return realtime(nix::libc::SIGRTMAX() - offset).ok_or_else(|| bad_signal(name));
    }
    full.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad_signal(name))
}

fn realtime(n: i32) -> Option<i32> {
    (nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX())
        .contains(&n)
        .then_some(n)
}

fn bad_signal(name: &str) -> Error {
    Error::InvalidSignal {
        signal: name.to_string(),
    }
}

/// A record for tests: container `id` of pod `pod`, created, no config.
#[cfg(test)]
pub(super) fn sample(id: &str, pod: &str) -> ContainerRecord {
    ContainerRecord {
        id: ContainerId::parse(id).expect("a container id"),
        pod_id: SandboxId::parse(pod).expect("a pod id"),
        name: format!("name-{id}"),
        attempt: 0,
        image: String::new(),
        image_id: crate::image::Digest::sha256_of(b"image").into(),
        image_ref: String::new(),
        chain_ids: vec![],
        stop_signal: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        log_path: String::new(),
        log_file: None,
        state: ContainerState::Created,
        created_at_ns: 0,
        started_at_ns: 0,
        finished_at_ns: 0,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
        pid: 0,
        mounts: Vec::new(),
        user: ProcessUser::default(),
        pod: PodContext::default(),
        config: ContainerConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, oom: bool) -> ExitStatus {
        ExitStatus {
            code,
            signal: None,
            oom_killed: oom,
            finished_at_ns: 7,
            shim_lost: None,
            not_created: None,
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(&exit(0, false)), "Completed");
        assert_eq!(reason(&exit(1, false)), "Error");
        assert_eq!(reason(&exit(137, true)), "OOMKilled");
        let lost = ExitStatus {
            shim_lost: Some("gone".into()),
            ..exit(137, false)
        };
        assert_eq!(reason(&lost), "ShimDied");
        let not_created = ExitStatus {
            not_created: Some("mount failed".into()),
            ..exit(128, false)
        };
        assert_eq!(reason(&not_created), "StartError");
        let mut r = sample(&"a".repeat(64), &"b".repeat(64));
        assert!(r.set_exited(&not_created));
        assert_eq!(r.message, "mount failed");
        let mut r = sample("c", "p");
        assert!(r.set_exited(&lost));
        assert_eq!(
            (r.reason.as_str(), r.message.as_str()),
            ("ShimDied", "gone")
        );
    }

    #[test]
    fn stop_signals_parse() {
        assert_eq!(stop_signal(None).expect("default"), 15);
        assert_eq!(stop_signal(Some("")).expect("empty"), 15);
        assert_eq!(stop_signal(Some("SIGQUIT")).expect("name"), 3);
        assert_eq!(stop_signal(Some("quit")).expect("short"), 3);
        assert_eq!(stop_signal(Some("9")).expect("number"), 9);
        assert_eq!(
            stop_signal(Some("SIGRTMIN+3")).expect("rt"),
            nix::libc::SIGRTMIN() + 3
        );
        assert_eq!(
            stop_signal(Some("SIGRTMAX-2")).expect("rt max"),
            nix::libc::SIGRTMAX() - 2
        );
        assert_eq!(
            stop_signal(Some("SIGRTMAX")).expect("rt max"),
            nix::libc::SIGRTMAX()
        );
        assert!(stop_signal(Some("SIGRTMAX-99")).is_err());
        assert!(stop_signal(Some("SIGRTMAX+1")).is_err());
        assert!(stop_signal(Some("SIGNOPE")).is_err());
        assert!(stop_signal(Some("999")).is_err());
    }

    #[test]
    fn filters_match_every_field() {
        let mut r = sample("abcdef", "p123");
        r.state = ContainerState::Running;
        r.labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let all = ContainerFilter::default();
        assert!(all.matches(&r));
        let f = ContainerFilter {
            id: Some("abc".into()),
            state: Some(ContainerState::Running),
            pod_id: Some("p1".into()),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        };
        assert!(f.matches(&r));
        let other_label = ContainerFilter {
            labels: BTreeMap::from([("app".to_string(), "db".to_string())]),
            ..ContainerFilter::default()
        };
        assert!(!other_label.matches(&r));
        assert!(r.set_exited(&exit(0, false)));
        assert!(!f.matches(&r), "state differs now");
        assert_eq!((r.reason.as_str(), r.finished_at_ns), ("Completed", 7));
        assert!(!r.set_exited(&exit(1, false)), "the first exit stays");
        assert_eq!(r.exit_code, 0);
    }
}
