//! Runtime handlers (Kubernetes RuntimeClass): the name a pod is run with
//! picks the OCI runtime its containers are created by. The default
//! handler "" is corten's own core; every other one is an external OCI
//! runtime (runc, crun) driven by its command line from the shim.
//!
//! The pod's own infrastructure (its pinned namespaces, its init, its
//! cgroup) stays with the built-in core whatever the handler: containers
//! made by the external runtime join those namespaces by path, as
//! containerd's and CRI-O's containers join their pause container's.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One external OCI runtime a handler name stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciHandler {
    /// The runtime binary (absolute).
    pub binary: PathBuf,
    /// The runtime's state directory (`--root`); `None`: one inside each
    /// container's bundle, so that nothing outlives a removed container.
    pub root: Option<PathBuf>,
    /// Patterns of pod annotations passed on to the OCI spec of each
    /// container of the pod (`*` matches any run of characters), for
    /// runtimes that take settings from annotations.
    pub pod_annotations: Vec<String>,
}

/// The configured handlers by name (never ""; that is the built-in core).
pub type Handlers = BTreeMap<String, OciHandler>;

impl OciHandler {
    /// The pod annotations that go on to the container's spec.
    pub fn passed_annotations<'a>(
        &'a self,
        pod: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = (&'a String, &'a String)> + 'a {
        pod.iter().filter(|(key, _)| {
            self.pod_annotations
                .iter()
                .any(|pattern| glob_match(pattern, key))
        })
    }
}

/// `pattern` with `*` wildcards matches all of `text`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "io.katacontainers.*",
            "io.katacontainers.config.x"
        ));
        assert!(!glob_match("io.katacontainers.*", "io.kata"));
        assert!(glob_match("*", ""));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c-y-b"));
        assert!(glob_match("*.sandbox", "run.oci.sandbox"));
        assert!(
            !glob_match("ab*ba", "aba"),
            "overlapping ends do not share a character"
        );
    }

    #[test]
    fn only_matching_pod_annotations_pass() {
        let handler = OciHandler {
            pod_annotations: vec!["run.oci.*".into(), "exact".into()],
            ..OciHandler::default()
        };
        let pod: BTreeMap<String, String> = [
            ("run.oci.keep_original_groups", "1"),
            ("exact", "2"),
            ("other", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let passed: Vec<&str> = handler
            .passed_annotations(&pod)
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(passed, ["exact", "run.oci.keep_original_groups"]);
    }
}
