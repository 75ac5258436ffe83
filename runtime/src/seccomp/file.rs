//! Seccomp profiles from files: the OCI runtime-spec `linux.seccomp` JSON,
//! and Docker's profile format.
//!
//! Docker's format adds `archMap` and per-entry `includes`/`excludes`
//! (by capability, architecture, kernel version) and an older singular
//! `name`. A file profile is not told the container's capabilities, so it is
//! read conservatively: an entry that needs a capability is left out, one
//! that applies without a capability is kept; architecture filters are
//! evaluated for amd64; kernel-version minimums are taken as met.

use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Map, Value};

use super::Error;

/// Reads the seccomp profile at `path`.
pub fn from_file(path: &Path) -> Result<LinuxSeccomp, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse = |reason: String| Error::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let json = |source| Error::Json {
        path: path.to_path_buf(),
        source,
    };
    let mut value: Value = serde_json::from_slice(&text).map_err(json)?;
    let Some(obj) = value.as_object_mut() else {
        return Err(parse("not a JSON object".into()));
    };
    from_docker(obj);
    serde_json::from_value(value).map_err(json)
}

/// Rewrites Docker-only fields into their OCI form, in place.
fn from_docker(obj: &mut Map<String, Value>) {
    if let Some(Value::Array(map)) = obj.remove("archMap") {
        if !obj.contains_key("architectures") {
            let mut archs = Vec::new();
            for m in &map {
                archs.extend(m.get("architecture").cloned());
                if let Some(Value::Array(sub)) = m.get("subArchitectures") {
                    archs.extend(sub.iter().cloned());
                }
            }
            obj.insert("architectures".into(), Value::Array(archs));
        }
    }
    let Some(Value::Array(entries)) = obj.get_mut("syscalls") else {
        return;
    };
    entries.retain_mut(|entry| {
        let Some(e) = entry.as_object_mut() else {
            return true; // Left for the OCI parser to reject.
        };
        if let Some(name) = e.remove("name") {
            e.entry("names").or_insert_with(|| Value::Array(vec![name]));
        }
        let includes = e.remove("includes");
        let excludes = e.remove("excludes");
        e.remove("comment");
        let needs_caps = list(includes.as_ref(), "caps").next().is_some();
        let arch_included = {
            let mut arches = list(includes.as_ref(), "arches").peekable();
            arches.peek().is_none() || arches.any(is_amd64)
        };
        let arch_excluded = list(excludes.as_ref(), "arches").any(is_amd64);
        !needs_caps && arch_included && !arch_excluded
    });
}

fn list<'a>(filter: Option<&'a Value>, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    filter
        .and_then(|f| f.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn is_amd64(arch: &str) -> bool {
    matches!(arch, "amd64" | "x86_64" | "SCMP_ARCH_X86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompOperator};

    fn load(json: &str) -> Result<LinuxSeccomp, Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("profile.json");
        std::fs::write(&path, json).expect("write");
        from_file(&path)
    }

    #[test]
    fn reads_an_oci_profile() {
        let p = load(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                   "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(38));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        let s = p.syscalls().as_ref().expect("syscalls");
        assert_eq!(s.len(), 2);
        let args = s[1].args().as_ref().expect("args");
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
        assert_eq!(args[0].value(), 8);
    }

    #[test]
    fn reads_a_docker_profile_conservatively() {
        let p = load(
            r#"{"defaultAction":"SCMP_ACT_ERRNO",
                "archMap":[{"architecture":"SCMP_ARCH_X86_64",
                            "subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
                "syscalls":[
                  {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[],"comment":"",
                   "includes":{},"excludes":{}},
                  {"name":"write","action":"SCMP_ACT_ALLOW"},
                  {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                  {"names":["arm_only"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm64"]}},
                  {"names":["not_amd64"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["amd64"]}},
                  {"names":["clone"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}}
                ]}"#,
        )
        .expect("profile");
        assert_eq!(p.architectures().as_ref().map(Vec::len), Some(3));
        let names: Vec<_> = p
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect();
        assert_eq!(names, ["read", "write", "clone"]);
    }

    #[test]
    fn bad_files_are_named() {
        let e = load("[1,2]").expect_err("not an object");
        assert!(e.to_string().contains("profile.json"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let e = load(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).expect_err("bad action");
        assert!(e.to_string().contains("SCMP_ACT_NOPE"), "{e}");
        let e = from_file(Path::new("/nonexistent/profile.json")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/profile.json"), "{e}");
    }
}
