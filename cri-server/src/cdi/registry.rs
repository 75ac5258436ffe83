//! The devices the spec directories define, read afresh for each creation
//! that asks for one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tonic::Status;

use super::spec::{ContainerEdits, Spec};

/// The valid spec files of the spec directories and the devices they
/// define, by fully qualified name.
#[derive(Debug, Default)]
pub struct Registry {
    dirs: Vec<PathBuf>,
    specs: Vec<Loaded>,
    /// Qualified name -> (index in `specs`, index of the device in it).
    devices: HashMap<String, (usize, usize)>,
    /// Devices defined by two files of one directory: neither is used.
    conflicts: HashMap<String, Vec<PathBuf>>,
}

#[derive(Debug)]
struct Loaded {
    path: PathBuf,
    priority: usize,
    spec: Spec,
}

/// A requested device and the edits it brings: its spec's own edits come
/// with the first device of each spec.
#[derive(Debug)]
pub struct Resolved<'a> {
    /// The qualified name asked for.
    pub name: &'a str,
    /// The edits to make, in order.
    pub edits: Vec<&'a ContainerEdits>,
}

impl Registry {
    /// Reads every `*.json` and `*.yaml` file of `dirs` (in name order;
    /// later directories take priority). A missing directory is skipped; a
    /// file that cannot be read or is not a valid spec is skipped with a
    /// warning, the others still count. Blocking file I/O.
    pub fn scan(dirs: &[PathBuf]) -> Registry {
        let mut r = Registry {
            dirs: dirs.to_vec(),
            ..Registry::default()
        };
        for (priority, dir) in dirs.iter().enumerate() {
            for path in spec_files(dir) {
                match std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| Spec::parse(&path, &text))
                {
                    Ok(spec) => r.add(Loaded {
                        path,
                        priority,
                        spec,
                    }),
                    Err(error) => tracing::warn!(
                        path = %path.display(),
                        %error,
                        "CDI spec file skipped: not a valid spec"
                    ),
                }
            }
        }
        for (name, paths) in &r.conflicts {
            tracing::warn!(
                device = %name,
                files = ?paths,
                "CDI device defined twice in one directory: neither definition is used"
            );
        }
        r
    }

    fn add(&mut self, loaded: Loaded) {
        let index = self.specs.len();
        for (d, device) in loaded.spec.devices.iter().enumerate() {
            let name = format!("{}={}", loaded.spec.kind, device.name);
            if let Some(paths) = self.conflicts.get_mut(&name) {
                // Only a later directory's definition replaces a conflict.
                let conflict_priority = self
                    .specs
                    .iter()
                    .find(|s| paths.first() == Some(&s.path))
                    .map(|s| s.priority);
                if conflict_priority == Some(loaded.priority) {
                    paths.push(loaded.path.clone());
                    continue;
                }
                self.conflicts.remove(&name);
            } else if let Some(&(s, _)) = self.devices.get(&name) {
                let other = &self.specs[s];
                if other.priority == loaded.priority {
                    self.conflicts
                        .insert(name.clone(), vec![other.path.clone(), loaded.path.clone()]);
                    self.devices.remove(&name);
                    continue;
                }
            }
            self.devices.insert(name, (index, d));
        }
        self.specs.push(loaded);
    }

    /// The edits of the devices `names` (fully qualified, each once), in
    /// order; an unknown device is refused, naming it.
    pub fn resolve<'a>(&'a self, names: &'a [String]) -> Result<Vec<Resolved<'a>>, Status> {
        let mut specs_seen = Vec::new();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Some(&(s, d)) = self.devices.get(name) else {
                return Err(self.unknown(name));
            };
            let spec = &self.specs[s].spec;
            let mut edits = Vec::with_capacity(2);
            if !specs_seen.contains(&s) {
                specs_seen.push(s);
                edits.push(&spec.container_edits);
            }
            edits.push(&spec.devices[d].container_edits);
            out.push(Resolved { name, edits });
        }
        Ok(out)
    }

    fn unknown(&self, name: &str) -> Status {
        if let Some(paths) = self.conflicts.get(name) {
            let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Status::invalid_argument(format!(
                "CDI device {name:?} is defined by more than one spec file of one directory ({}), \
                 so by none",
                files.join(", ")
            ));
        }
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        Status::invalid_argument(format!(
            "CDI device {name:?} is not known: no valid spec file in {} defines it",
            dirs.join(", ")
        ))
    }
}

/// The spec files of `dir`, in name order; none when it cannot be read.
fn spec_files(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "CDI spec directory unreadable");
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .filter(|p| !p.is_dir())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, devices: &[(&str, &str)]) -> String {
        let devices: Vec<String> = devices
            .iter()
            .map(|(name, env)| {
                format!(r#"{{"name":"{name}","containerEdits":{{"env":["{env}"]}}}}"#)
            })
            .collect();
        format!(
            r#"{{"cdiVersion":"0.6.0","kind":"{kind}","containerEdits":{{"env":["SPEC={kind}"]}},"devices":[{}]}}"#,
            devices.join(",")
        )
    }

    fn env_of<'a>(r: &'a Resolved<'a>) -> Vec<&'a str> {
        r.edits
            .iter()
            .flat_map(|e| e.env.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn later_directories_win_and_bad_files_are_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (low, high) = (tmp.path().join("etc"), tmp.path().join("run"));
        for d in [&low, &high] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let w = |p: PathBuf, text: &str| std::fs::write(p, text).expect("write");
        w(
            low.join("a.json"),
            &spec("example.com/dev", &[("a", "A=low"), ("b", "B=low")]),
        );
        w(
            high.join("a.json"),
            &spec("example.com/dev", &[("a", "A=high")]),
        );
        w(low.join("broken.json"), "{\"cdiVersion\":");
        w(low.join("broken.yaml"), "cdiVersion: [");
        w(low.join("ignored.txt"), "not a spec");
        w(
            low.join("other.yaml"),
            "cdiVersion: 0.3.0\nkind: other.org/x\ndevices:\n- name: c\n  containerEdits:\n    env: [C=yaml]\n",
        );
        let r = Registry::scan(&[low, high, tmp.path().join("missing")]);
        let names: Vec<String> = ["example.com/dev=a", "example.com/dev=b", "other.org/x=c"]
            .map(String::from)
            .to_vec();
        let resolved = r.resolve(&names).expect("all known");
        assert_eq!(env_of(&resolved[0]), ["SPEC=example.com/dev", "A=high"]);
        // b's spec (the low one) differs from a's: its own edits come too.
        assert_eq!(env_of(&resolved[1]), ["SPEC=example.com/dev", "B=low"]);
        assert_eq!(env_of(&resolved[2]), ["C=yaml"]);

        let unknown = ["example.com/dev=zz".to_string()];
        let e = r.resolve(&unknown).expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message()
                .starts_with("CDI device \"example.com/dev=zz\" is not known"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn one_spec_brings_its_own_edits_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            tmp.path().join("s.json"),
            spec("example.com/dev", &[("a", "A=1"), ("b", "B=1")]),
        )
        .expect("write");
        let r = Registry::scan(&[tmp.path().to_path_buf()]);
        let names = [
            "example.com/dev=b".to_string(),
            "example.com/dev=a".to_string(),
        ];
        let resolved = r.resolve(&names).expect("known");
        assert_eq!(env_of(&resolved[0]), ["SPEC=example.com/dev", "B=1"]);
        assert_eq!(env_of(&resolved[1]), ["A=1"]);
    }

    #[test]
    fn a_device_twice_in_one_directory_is_refused_unless_a_later_one_defines_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (low, high) = (tmp.path().join("etc"), tmp.path().join("run"));
        for d in [&low, &high] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let w = |p: PathBuf, text: &str| std::fs::write(p, text).expect("write");
        w(
            low.join("1.json"),
            &spec("example.com/dev", &[("a", "A=1"), ("b", "B=1")]),
        );
        w(
            low.join("2.json"),
            &spec("example.com/dev", &[("a", "A=2"), ("c", "C=2")]),
        );
        w(
            low.join("3.json"),
            &spec("example.com/dev", &[("a", "A=3")]),
        );
        let r = Registry::scan(std::slice::from_ref(&low));
        let a = ["example.com/dev=a".to_string()];
        let e = r.resolve(&a).expect_err("conflict");
        assert!(e.message().contains("1.json"), "{}", e.message());
        assert!(e.message().contains("3.json"), "{}", e.message());
        let others = [
            "example.com/dev=b".to_string(),
            "example.com/dev=c".to_string(),
        ];
        assert!(r.resolve(&others).is_ok(), "the rest of both files stays");

        w(
            high.join("x.json"),
            &spec("example.com/dev", &[("a", "A=high")]),
        );
        let r = Registry::scan(&[low, high]);
        let resolved = r.resolve(&a).expect("the later directory's");
        assert_eq!(env_of(&resolved[0]), ["SPEC=example.com/dev", "A=high"]);
    }
}
