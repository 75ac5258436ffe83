//! A CDI spec file: its format (cdiVersion, kind, devices, containerEdits)
//! and the checks that make a file valid, as the CDI specification gives
//! them. Unknown fields make a file invalid, as in the reference library.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::names::{check_device_name, check_kind};

/// A parsed and checked spec file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The CDI version the file follows (`1.0.0`, `v0.6.0`, ...).
    #[serde(rename = "cdiVersion")]
    pub version: String,
    /// `vendor.com/class`.
    pub kind: String,
    /// Free-form notes (from 0.6.0).
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// The devices; at least one.
    #[serde(default, deserialize_with = "nullable")]
    pub devices: Vec<Device>,
    /// Edits made when any device of this file is asked for.
    #[serde(default, deserialize_with = "nullable")]
    pub container_edits: ContainerEdits,
}

/// One device of a spec.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    /// Its name within the kind (`gpu0`, `0`, `GPU-<uuid>`).
    pub name: String,
    /// Free-form notes (from 0.6.0).
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// Edits made when this device is asked for.
    #[serde(default, deserialize_with = "nullable")]
    pub container_edits: ContainerEdits,
}

/// Changes to a container.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `NAME=value` entries, appended to the environment.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// Device nodes to make.
    #[serde(default, deserialize_with = "nullable")]
    pub device_nodes: Vec<DeviceNode>,
    /// Host network interfaces to move in (from 1.1.0).
    #[serde(default, deserialize_with = "nullable")]
    pub net_devices: Vec<NetDevice>,
    /// OCI hooks to run.
    #[serde(default, deserialize_with = "nullable")]
    pub hooks: Vec<Hook>,
    /// Mounts to make.
    #[serde(default, deserialize_with = "nullable")]
    pub mounts: Vec<Mount>,
    /// Intel RDT settings (from 0.7.0).
    #[serde(default)]
    pub intel_rdt: Option<IntelRdt>,
    /// Extra groups of the container's process; 0 is ignored (from 0.7.0).
    #[serde(default, deserialize_with = "nullable")]
    pub additional_gids: Vec<u32>,
}

/// A device node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    /// Where it appears in the container.
    pub path: String,
    /// The node on the host; `path` when empty (from 0.5.0).
    #[serde(default)]
    pub host_path: String,
    /// `c`, `u`, `b` or `p`; the host node's when empty.
    #[serde(default, rename = "type")]
    pub typ: String,
    /// Major number; the host node's when 0.
    #[serde(default)]
    pub major: i64,
    /// Minor number.
    #[serde(default)]
    pub minor: i64,
    /// Permission bits; the host node's when absent.
    #[serde(default, deserialize_with = "file_mode")]
    pub file_mode: Option<u32>,
    /// cgroup access: some of `rwm` (all when empty), or `none`.
    #[serde(default)]
    pub permissions: String,
    /// Owner in the container.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group in the container.
    #[serde(default)]
    pub gid: Option<u32>,
}

/// A mount.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// The source on the host.
    pub host_path: String,
    /// The destination in the container.
    pub container_path: String,
    /// mount(8) words.
    #[serde(default, deserialize_with = "nullable")]
    pub options: Vec<String>,
    /// The filesystem type (from 0.4.0); for bind mounts a dummy.
    #[serde(default, rename = "type")]
    pub typ: String,
}

/// An OCI hook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    /// When it runs: prestart, createRuntime, createContainer,
    /// startContainer, poststart or poststop.
    pub hook_name: String,
    /// The program.
    pub path: String,
    /// Its argv.
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<String>,
    /// Its environment.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// Seconds before it is aborted.
    #[serde(default)]
    pub timeout: Option<i64>,
}

/// Intel RDT (resctrl) settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelRdt {
    /// Class of service.
    #[serde(default, rename = "closID")]
    pub clos_id: String,
    /// L3 cache schema.
    #[serde(default, rename = "l3CacheSchema")]
    pub l3_cache_schema: String,
    /// Memory bandwidth schema.
    #[serde(default, rename = "memBwSchema")]
    pub mem_bw_schema: String,
    /// Schemata lines (from 1.1.0).
    #[serde(default)]
    pub schemata: Option<Vec<String>>,
    /// Monitoring (from 1.1.0).
    #[serde(default, rename = "enableMonitoring")]
    pub enable_monitoring: bool,
}

/// A network interface to move into the container.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetDevice {
    /// Its name on the host.
    pub host_interface_name: String,
    /// Its name in the container.
    pub name: String,
}

/// The hook names the OCI runtime spec knows.
pub use corten_runtime::spec::HOOK_POINTS as HOOK_NAMES;

/// The CDI versions there are, oldest first.
const VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

/// `null` read as the empty value, as Go's decoders treat it.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A file mode: a number, or in YAML also `0644`, which YAML 1.1 (the
/// reference library's) reads as octal and YAML 1.2 as a string.
fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Number(u32),
        Text(String),
    }
    match Option::<Mode>::deserialize(d)? {
        None => Ok(None),
        Some(Mode::Number(n)) => Ok(Some(n)),
        Some(Mode::Text(t)) => t
            .strip_prefix('0')
            .and_then(|octal| u32::from_str_radix(octal, 8).ok())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("fileMode {t:?} is not a number"))),
    }
}

impl Spec {
    /// Parses the text of the file at `path` (JSON for `.json`, YAML
    /// otherwise) and checks it.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Spec, String> {
        let spec: Spec = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_slice(text).map_err(|e| e.to_string())?
        } else {
            serde_yaml_ng::from_slice(text).map_err(|e| e.to_string())?
        };
        spec.check()?;
        Ok(spec)
    }

    /// The checks of the specification: a known version no older than
    /// the fields used need, a valid kind, one or more uniquely named
    /// devices each with edits, and valid edits.
    fn check(&self) -> Result<(), String> {
        let version = self.version.strip_prefix('v').unwrap_or(&self.version);
        let given = VERSIONS
            .iter()
            .position(|v| *v == version)
            .ok_or_else(|| format!("unknown cdiVersion {:?}", self.version))?;
        let needed = self.minimum_version();
        if VERSIONS.iter().position(|v| *v == needed) > Some(given) {
            return Err(format!(
                "cdiVersion {:?} is older than the fields used need ({needed})",
                self.version
            ));
        }
        check_kind(&self.kind)?;
        self.container_edits
            .check()
            .map_err(|e| format!("containerEdits: {e}"))?;
        if self.devices.is_empty() {
            return Err("no devices".into());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.devices {
            check_device_name(&d.name)?;
            if !seen.insert(d.name.as_str()) {
                return Err(format!("device {:?} is defined twice", d.name));
            }
            if d.container_edits == ContainerEdits::default() {
                return Err(format!("device {:?} has no containerEdits", d.name));
            }
            d.container_edits
                .check()
                .map_err(|e| format!("device {:?}: {e}", d.name))?;
        }
        Ok(())
    }

    /// The oldest version with every field this file uses.
    fn minimum_version(&self) -> &'static str {
        let all_edits: Vec<&ContainerEdits> = std::iter::once(&self.container_edits)
            .chain(self.devices.iter().map(|d| &d.container_edits))
            .collect();
        let any = |f: &dyn Fn(&ContainerEdits) -> bool| all_edits.iter().any(|e| f(e));
        if any(&|e| {
            !e.net_devices.is_empty()
                || e.intel_rdt
                    .as_ref()
                    .is_some_and(|r| r.schemata.is_some() || r.enable_monitoring)
        }) {
            return "1.1.0";
        }
        if any(&|e| e.intel_rdt.is_some() || !e.additional_gids.is_empty()) {
            return "0.7.0";
        }
        let dotted_class = self
            .kind
            .split_once('/')
            .is_some_and(|(_, class)| class.contains('.'));
        if !self.annotations.is_empty()
            || self.devices.iter().any(|d| !d.annotations.is_empty())
            || dotted_class
        {
            return "0.6.0";
        }
        if self
            .devices
            .iter()
            .any(|d| d.name.starts_with(|c: char| c.is_ascii_digit()))
            || any(&|e| e.device_nodes.iter().any(|n| !n.host_path.is_empty()))
        {
            return "0.5.0";
        }
        if any(&|e| e.mounts.iter().any(|m| !m.typ.is_empty())) {
            return "0.4.0";
        }
        "0.3.0"
    }
}

impl ContainerEdits {
    fn check(&self) -> Result<(), String> {
        check_env(&self.env)?;
        for n in &self.device_nodes {
            if n.path.is_empty() {
                return Err("a device node has an empty path".into());
            }
            if !matches!(n.typ.as_str(), "" | "b" | "c" | "u" | "p") {
                return Err(format!(
                    "device node {:?}: unknown type {:?}",
                    n.path, n.typ
                ));
            }
            let perms = n.permissions.as_str();
            if perms != "none" && !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err(format!(
                    "device node {:?}: permissions {perms:?} are not some of `rwm` or `none`",
                    n.path
                ));
            }
        }
        for h in &self.hooks {
            if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
                return Err(format!("unknown hook name {:?}", h.hook_name));
            }
            if h.path.is_empty() {
                return Err(format!("hook {:?} has an empty path", h.hook_name));
            }
            check_env(&h.env).map_err(|e| format!("hook {:?}: {e}", h.hook_name))?;
        }
        for m in &self.mounts {
            if m.host_path.is_empty() || m.container_path.is_empty() {
                return Err("a mount has an empty host or container path".into());
            }
        }
        for d in &self.net_devices {
            if d.host_interface_name.is_empty() || d.name.is_empty() {
                return Err("a net device has an empty name".into());
            }
        }
        Ok(())
    }
}

fn check_env(env: &[String]) -> Result<(), String> {
    match env.iter().find(|kv| kv.find('=').is_none_or(|i| i == 0)) {
        Some(kv) => Err(format!("environment entry {kv:?} is not NAME=value")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
cdiVersion: "0.6.0"
kind: example.com/dev
annotations:
  note: yes
containerEdits:
  env: [EXAMPLE_VENDOR=1]
  mounts:
  - hostPath: /usr/lib/vendor
    containerPath: /usr/lib/vendor
    options: [ro, nosuid, nodev, bind]
devices:
- name: nul
  containerEdits:
    deviceNodes:
    - path: /dev/vendor-null
      hostPath: /dev/null
      permissions: rw
    - path: /dev/vendor-null2
      hostPath: /dev/null
      fileMode: 0640
- name: "0"
  containerEdits:
    hooks:
    - hookName: createContainer
      path: /usr/bin/vendor-hook
      args: [vendor-hook, update]
      timeout: 5
"#;

    #[test]
    fn yaml_and_json_specs_parse() {
        let spec = Spec::parse(Path::new("/etc/cdi/v.yaml"), YAML.as_bytes()).expect("valid");
        assert_eq!(spec.kind, "example.com/dev");
        assert_eq!(spec.container_edits.env, ["EXAMPLE_VENDOR=1"]);
        assert_eq!(
            spec.container_edits.mounts[0].options,
            ["ro", "nosuid", "nodev", "bind"]
        );
        assert_eq!(spec.devices[0].name, "nul");
        let node = &spec.devices[0].container_edits.device_nodes[0];
        assert_eq!(
            (node.path.as_str(), node.host_path.as_str(), node.file_mode),
            ("/dev/vendor-null", "/dev/null", None)
        );
        assert_eq!(spec.devices[1].container_edits.hooks[0].timeout, Some(5));
        // YAML 1.1 octal, as the reference library reads it.
        let node = &spec.devices[0].container_edits.device_nodes[1];
        assert_eq!(node.file_mode, Some(0o640));
        let bad = YAML.replace("fileMode: 0640", "fileMode: rw");
        let err = Spec::parse(Path::new("v.yaml"), bad.as_bytes()).expect_err("not a mode");
        assert!(err.contains("fileMode"), "{err}");

        let json = r#"{"cdiVersion":"1.0.0","kind":"example.com/dev",
            "devices":[{"name":"zero","containerEdits":{"env":null,"deviceNodes":[
              {"path":"/dev/vendor-zero","hostPath":"/dev/zero","type":"c","major":1,"minor":5,
               "fileMode":438,"uid":0,"gid":5}]}}],
            "containerEdits":{"additionalGids":[0,44]}}"#;
        let spec = Spec::parse(Path::new("v.json"), json.as_bytes()).expect("valid json");
        let node = &spec.devices[0].container_edits.device_nodes[0];
        assert_eq!(
            (node.major, node.minor, node.file_mode),
            (1, 5, Some(0o666))
        );
        assert_eq!(spec.container_edits.additional_gids, [0, 44]);
    }

    #[test]
    fn invalid_specs_are_refused_saying_why() {
        let ok = r#"{"cdiVersion":"0.5.0","kind":"example.com/dev","devices":[{"name":"a","containerEdits":{"env":["A=1"]}}]}"#;
        Spec::parse(Path::new("s.json"), ok.as_bytes()).expect("the base is valid");
        for (edit, needle) in [
            (("\"0.5.0\"", "\"9.9.9\""), "unknown cdiVersion"),
            (("example.com/dev", "dev"), "no `/`"),
            (("\"name\":\"a\"", "\"name\":\"-a\""), "device name"),
            (("\"env\":[\"A=1\"]", "\"env\":[\"=1\"]"), "not NAME=value"),
            (("\"env\":[\"A=1\"]", "\"env\":[]"), "no containerEdits"),
            (("\"env\"", "\"environment\""), "unknown field"),
            (
                ("\"env\":[\"A=1\"]", "\"additionalGids\":[5]"),
                "older than the fields used need (0.7.0)",
            ),
            (
                (
                    "\"env\":[\"A=1\"]",
                    "\"hooks\":[{\"hookName\":\"preStart\",\"path\":\"/x\"}]",
                ),
                "unknown hook name",
            ),
            (
                (
                    "\"env\":[\"A=1\"]",
                    "\"deviceNodes\":[{\"path\":\"/dev/x\",\"type\":\"z\"}]",
                ),
                "unknown type",
            ),
            (
                (
                    "\"env\":[\"A=1\"]",
                    "\"deviceNodes\":[{\"path\":\"/dev/x\",\"permissions\":\"rx\"}]",
                ),
                "permissions",
            ),
            (
                ("\"devices\":[", "\"devices\":[], \"x\":["),
                "unknown field",
            ),
        ] {
            let text = ok.replace(edit.0, edit.1);
            let err = Spec::parse(Path::new("s.json"), text.as_bytes()).expect_err(&text);
            assert!(err.contains(needle), "{text}: {err}");
        }
        let twice = ok.replace(
            "}]}",
            "},{\"name\":\"a\",\"containerEdits\":{\"env\":[\"B=2\"]}}]}",
        );
        let err = Spec::parse(Path::new("s.json"), twice.as_bytes()).expect_err("twice");
        assert!(err.contains("defined twice"), "{err}");
        let no_devices = r#"{"cdiVersion":"0.5.0","kind":"example.com/dev","devices":[]}"#;
        assert!(Spec::parse(Path::new("s.json"), no_devices.as_bytes())
            .expect_err("empty")
            .contains("no devices"));
        assert!(Spec::parse(Path::new("s.yaml"), b"{not yaml").is_err());
    }
}
