//! Configuration: flags > config file > built-in defaults.
//!
//! Every key is declared once, with its doc comment, through `section!`; the
//! same text is what `cortend config` prints, so the documentation of the
//! file cannot drift from the structs that read it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/corten/config.toml";

/// Declares a config section: the struct (serde, unknown keys refused,
/// missing keys defaulted), its `Default`, and its keys' documentation.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                pub $field:ident : $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl Documented for $name {
            const SECTION_DOC: &'static [&'static str] = &[$($sdoc),*];
            const KEYS: &'static [(&'static str, &'static [&'static str])] =
                &[$( (stringify!($field), &[$($doc),+]) ),*];
        }
    };
}

/// A config section whose keys carry their documentation.
pub trait Documented {
    /// The section's own documentation.
    const SECTION_DOC: &'static [&'static str];
    /// Each key with its documentation lines, in declaration order.
    const KEYS: &'static [(&'static str, &'static [&'static str])];
}

section! {
    /// The whole cortend configuration: top-level keys, then sections.
    pub struct Config {
        /// Persistent state: the metadata database, image content and
        /// layer snapshots. Must be an absolute path.
        pub root_dir: PathBuf = PathBuf::from("/var/lib/corten"),
        /// Runtime state that does not survive a reboot: shim sockets, pod
        /// namespaces, the daemon lock. Must be an absolute path.
        pub state_dir: PathBuf = PathBuf::from("/run/corten"),
        /// The Unix socket serving CRI (RuntimeService and ImageService).
        /// Created with mode 0660; its directory is created if missing.
        pub listen: PathBuf = PathBuf::from("/run/corten/corten.sock"),
        /// Log verbosity on stderr: error, warn, info, debug or trace.
        pub log_level: String = "info".to_string(),
        /// Seconds that in-flight calls get to finish after SIGTERM or
        /// SIGINT before the daemon exits anyway. Containers keep running.
        pub shutdown_grace_seconds: u64 = 10,
        /// The `corten-shim` helper binary (container supervisor, pod
        /// namespace pinner, exec helper). Empty: the `corten-shim` next to
        /// the `cortend` executable.
        pub shim_path: PathBuf = PathBuf::new(),
        /// Control groups.
        pub cgroup: Cgroup = Cgroup::default(),
        /// CNI networking for pods.
        pub cni: Cni = Cni::default(),
        /// Image registries.
        pub registry: Registry = Registry::default(),
        /// The streaming server (Exec, Attach, PortForward).
        pub streaming: Streaming = Streaming::default(),
        /// Runtime handlers (Kubernetes RuntimeClass `handler`), each a
        /// `[runtimes.<name>]` section naming an external OCI runtime that
        /// creates the containers of pods run with that handler. The
        /// default handler "" is corten's own core and is always there.
        pub runtimes: BTreeMap<String, RuntimeHandler> = BTreeMap::new(),
        /// CDI (Container Device Interface) devices.
        pub cdi: Cdi = Cdi::default(),
    }
}

section! {
    /// A runtime handler: an OCI runtime (runc, crun, ...) driven by its
    /// command line. The pod's own namespaces and cgroup stay with
    /// corten's core; the handler's runtime creates every container.
    pub struct RuntimeHandler {
        /// The runtime binary: an absolute path. cortend runs it with
        /// `features` at start (what Status reports of the handler).
        pub path: PathBuf = PathBuf::new(),
        /// The runtime's state directory (its `--root`). Empty: one inside
        /// each container's bundle, removed with the container.
        pub root: PathBuf = PathBuf::new(),
        /// Whether the runtime manages cgroups through systemd
        /// (`--systemd-cgroup`). Only false: cortend's cgroup driver is
        /// cgroupfs, and a handler must place cgroups as it does.
        pub systemd_cgroup: bool = false,
        /// Pod annotations passed on to the OCI spec of the pod's
        /// containers, as patterns (`*` matches any run of characters),
        /// for runtimes that take settings from annotations.
        pub pod_annotations: Vec<String> = Vec::new(),
    }
}

section! {
    /// CDI (Container Device Interface) devices: the names a container asks
    /// for (the CRI CDI_devices field, `cdi.k8s.io/*` annotations) are
    /// looked up in the spec files (*.json, *.yaml) of these directories,
    /// read again at each creation that asks for a device.
    pub struct Cdi {
        /// Directories of CDI spec files, in rising priority: a device
        /// defined in two directories is the later one's; defined twice in
        /// one directory, it is refused. Missing directories are skipped.
        pub spec_dirs: Vec<PathBuf> = vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")],
    }
}

section! {
    /// The HTTP server that serves the URLs the Exec, Attach and
    /// PortForward calls return (SPDY/3.1 and WebSocket).
    pub struct Streaming {
        /// The address it listens on. Keep it on loopback unless the node's
        /// apiserver must reach it directly.
        pub address: String = "127.0.0.1".to_string(),
        /// The TCP port; 0 picks a free one at start.
        pub port: u16 = 0,
        /// Seconds a streaming session may stay idle (no byte either way)
        /// before it is closed.
        pub idle_timeout_seconds: u64 = 4 * 3600,
    }
}

section! {
    /// Image registries: mirrors, plain-HTTP registries, CAs, credentials.
    /// Registries on loopback (localhost, 127.0.0.0/8, ::1) are tried over
    /// TLS first and over plain HTTP when they do not speak TLS.
    pub struct Registry {
        /// Mirrors per registry host, tried in order before the registry
        /// itself; each is host[:port], optionally with http:// or https://.
        /// Example: { "docker.io" = ["http://127.0.0.1:5000"] }. The key "*"
        /// gives the mirrors of every registry without an entry of its own.
        pub mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new(),
        /// Registries (host[:port], or "*" for every one not on loopback)
        /// whose mirrors are final: the registry itself is never contacted,
        /// only its mirrors; one without mirrors cannot be pulled from.
        pub mirrors_final: Vec<String> = Vec::new(),
        /// Registries (host[:port]) reached over plain HTTP, never TLS.
        pub insecure: Vec<String> = Vec::new(),
        /// PEM files of extra certificate authorities trusted for registries.
        pub ca_files: Vec<PathBuf> = Vec::new(),
        /// A docker-style config.json with credentials per registry, used
        /// when a pull request carries none. Empty: none.
        pub auth_file: PathBuf = PathBuf::new(),
    }
}

section! {
    /// Control groups.
    pub struct Cgroup {
        /// The cgroup driver, as reported to kubelet by the RuntimeConfig
        /// call. Only "cgroupfs" is supported.
        pub driver: CgroupDriver = CgroupDriver::Cgroupfs,
    }
}

section! {
    /// CNI networking for pods.
    pub struct Cni {
        /// Directory searched for the network configuration (.conflist,
        /// .conf or .json; the first valid file in name order is used).
        pub conf_dir: PathBuf = PathBuf::from("/etc/cni/net.d"),
        /// Directories searched, in order, for CNI plugin binaries.
        pub bin_dirs: Vec<PathBuf> = vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
    }
}

/// The supported cgroup drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    /// cgroups managed directly through the cgroup filesystem.
    Cgroupfs,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("invalid config file {path}: {}", .source.to_string().trim_end())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, which names the line, the key and what was expected.
        #[source]
        source: toml::de::Error,
    },
    /// A value parses but is not acceptable.
    #[error("invalid config ({origin}): key `{key}`: expected {expected}, got {got}")]
    Value {
        /// The file, or "command line".
        origin: String,
        /// The dotted key.
        key: String,
        /// What would be accepted.
        expected: &'static str,
        /// What was given.
        got: String,
    },
}

impl Config {
    /// Reads `path`; with `required` false a missing file means defaults.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and validates the text of a config file.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    /// Checks what the types alone do not.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, expected, got: String| ConfigError::Value {
            origin: origin.to_string(),
            key: key.to_string(),
            expected,
            got,
        };
        let absolute = "an absolute path";
        for (key, path) in [
            ("root_dir", &self.root_dir),
            ("state_dir", &self.state_dir),
            ("listen", &self.listen),
            ("cni.conf_dir", &self.cni.conf_dir),
        ] {
            if !path.is_absolute() {
                return Err(bad(key, absolute, format!("{path:?}")));
            }
        }
        if let Some(p) = self.cni.bin_dirs.iter().find(|p| !p.is_absolute()) {
            return Err(bad("cni.bin_dirs", "absolute paths", format!("{p:?}")));
        }
        if let Some(p) = self.cdi.spec_dirs.iter().find(|p| !p.is_absolute()) {
            return Err(bad("cdi.spec_dirs", "absolute paths", format!("{p:?}")));
        }
        if let Some(p) = self.registry.ca_files.iter().find(|p| !p.is_absolute()) {
            return Err(bad("registry.ca_files", "absolute paths", format!("{p:?}")));
        }
        if !self.shim_path.as_os_str().is_empty() && !self.shim_path.is_absolute() {
            return Err(bad(
                "shim_path",
                "an absolute path or \"\"",
                format!("{:?}", self.shim_path),
            ));
        }
        let auth = &self.registry.auth_file;
        if !auth.as_os_str().is_empty() && !auth.is_absolute() {
            return Err(bad(
                "registry.auth_file",
                "an absolute path or \"\"",
                format!("{auth:?}"),
            ));
        }
        for (registry, mirrors) in &self.registry.mirrors {
            if let Some(m) = mirrors
                .iter()
                .chain(Some(registry).filter(|r| *r != "*"))
                .find(|m| !valid_endpoint(m))
            {
                return Err(bad(
                    "registry.mirrors",
                    "registry hosts as host[:port], mirrors optionally with http:// or https://",
                    format!("{m:?}"),
                ));
            }
        }
        if let Some(r) = self
            .registry
            .mirrors_final
            .iter()
            .find(|r| *r != "*" && !valid_endpoint(r))
        {
            return Err(bad(
                "registry.mirrors_final",
                "registry hosts as host[:port], or \"*\"",
                format!("{r:?}"),
            ));
        }
        if parse_level(&self.log_level).is_none() {
            return Err(bad(
                "log_level",
                "one of error, warn, info, debug, trace",
                format!("{:?}", self.log_level),
            ));
        }
        if self.streaming.address.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(
                "streaming.address",
                "an IP address",
                format!("{:?}", self.streaming.address),
            ));
        }
        if self.streaming.idle_timeout_seconds == 0 {
            return Err(bad(
                "streaming.idle_timeout_seconds",
                "at least 1",
                "0".to_string(),
            ));
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err(bad(
                "shutdown_grace_seconds",
                "at most 3600",
                self.shutdown_grace_seconds.to_string(),
            ));
        }
        for (name, h) in &self.runtimes {
            if !dns_label(name) {
                return Err(bad(
                    "runtimes",
                    "handler names that are DNS labels (a-z, 0-9, '-', at most 63), as RuntimeClass handlers are",
                    format!("{name:?}"),
                ));
            }
            let key = |k: &str| format!("runtimes.{name}.{k}");
            if !h.path.is_absolute() {
                return Err(bad(&key("path"), absolute, format!("{:?}", h.path)));
            }
            if !h.root.as_os_str().is_empty() && !h.root.is_absolute() {
                return Err(bad(
                    &key("root"),
                    "an absolute path or \"\"",
                    format!("{:?}", h.root),
                ));
            }
            if h.systemd_cgroup {
                return Err(bad(
                    &key("systemd_cgroup"),
                    "false (cortend's cgroup driver is cgroupfs)",
                    "true".to_string(),
                ));
            }
            if let Some(p) = h.pod_annotations.iter().find(|p| p.is_empty()) {
                return Err(bad(
                    &key("pod_annotations"),
                    "non-empty patterns",
                    format!("{p:?}"),
                ));
            }
        }
        Ok(())
    }

    /// This configuration, complete, as commented TOML that parses back to it.
    pub fn template(&self) -> String {
        let table = match toml::Table::try_from(self) {
            Ok(t) => t,
            Err(e) => return format!("# cannot render the configuration: {e}\n"),
        };
        let mut out = String::new();
        out.push_str(
            "# cortend configuration (default path /etc/corten/config.toml).\n\
             # Command-line flags override these values; a missing key takes the\n\
             # default shown; an unknown key is refused.\n\n",
        );
        write_section::<Config>(&mut out, None, &table);
        write_section::<Cgroup>(&mut out, Some("cgroup"), &table);
        write_section::<Cni>(&mut out, Some("cni"), &table);
        write_section::<Registry>(&mut out, Some("registry"), &table);
        write_section::<Streaming>(&mut out, Some("streaming"), &table);
        let handlers = table.get("runtimes").and_then(toml::Value::as_table);
        if handlers.is_none_or(toml::Table::is_empty) {
            write_handler_example(&mut out);
        }
        for (name, handler) in handlers.into_iter().flatten() {
            let mut one = toml::Table::new();
            one.insert(format!("runtimes.{name}"), handler.clone());
            write_section::<RuntimeHandler>(&mut out, Some(&format!("runtimes.{name}")), &one);
        }
        write_section::<Cdi>(&mut out, Some("cdi"), &table);
        out
    }
}

/// The runtimes section when no handler is configured: its documentation
/// and an example handler, all commented out.
fn write_handler_example(out: &mut String) {
    if let Some((_, doc)) = Config::KEYS.iter().find(|(k, _)| *k == "runtimes") {
        for line in *doc {
            let _ = writeln!(out, "#{line}");
        }
    }
    for line in RuntimeHandler::SECTION_DOC {
        let _ = writeln!(out, "#{line}");
    }
    let _ = writeln!(out, "#[runtimes.runc]");
    let example = RuntimeHandler {
        path: PathBuf::from("/usr/sbin/runc"),
        ..RuntimeHandler::default()
    };
    let table = toml::Table::try_from(&example).unwrap_or_default();
    for (key, doc) in RuntimeHandler::KEYS {
        for line in *doc {
            let _ = writeln!(out, "#{line}");
        }
        if let Some(value) = table.get(*key) {
            let _ = writeln!(out, "#{key} = {value}");
        }
    }
    out.push('\n');
}

/// A DNS-1123 label: what Kubernetes allows as a RuntimeClass handler.
fn dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn write_section<S: Documented>(out: &mut String, name: Option<&str>, root: &toml::Table) {
    let table = match name {
        Some(n) => root.get(n).and_then(toml::Value::as_table),
        None => Some(root),
    };
    for line in S::SECTION_DOC {
        let _ = writeln!(out, "#{line}");
    }
    if let Some(n) = name {
        let _ = writeln!(out, "[{n}]");
    }
    for (key, doc) in S::KEYS {
        // Top-level tables are sections, written after the top-level keys.
        let value = table.and_then(|t| t.get(*key));
        if name.is_none() && value.is_some_and(toml::Value::is_table) {
            continue;
        }
        for line in *doc {
            let _ = writeln!(out, "#{line}");
        }
        match value {
            Some(value) => {
                let _ = writeln!(out, "{key} = {value}");
            }
            // The serialiser leaves out empty tables; the key is still documented and set.
            None => {
                let _ = writeln!(out, "{key} = {{}}");
            }
        }
    }
    out.push('\n');
}

/// host[:port] with an optional scheme, nothing else.
fn valid_endpoint(entry: &str) -> bool {
    let host = entry
        .strip_prefix("http://")
        .or_else(|| entry.strip_prefix("https://"))
        .unwrap_or(entry)
        .trim_end_matches('/');
    !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace)
}

/// Parses a log level name.
pub fn parse_level(level: &str) -> Option<tracing::Level> {
    level.parse().ok()
}

#[cfg(test)]
mod tests;
