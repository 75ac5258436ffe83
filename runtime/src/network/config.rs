//! Finding the CNI network configuration, the way libcni does: the files of
//! the conf dir sorted by name, `.conflist`, `.conf` and `.json` considered,
//! the first one that is valid and whose plugins are all installed wins.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Error;

/// A loaded network configuration list (a single-plugin `.conf` is lifted to
/// a list of one, as libcni does).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The network name.
    pub name: String,
    /// The CNI spec version the file declares.
    pub cni_version: String,
    /// The plugin configurations, in chain order.
    pub plugins: Vec<Value>,
}

impl NetworkConfig {
    /// The plugin types, in chain order.
    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
    }
}

/// Finds the network configuration in `conf_dir` whose plugins are all
/// present in one of `bin_dirs`.
///
/// A missing directory is the same as an empty one: no network yet.
pub fn find_network(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<NetworkConfig, Error> {
    let mut files = match std::fs::read_dir(conf_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(Error::ReadDir {
                dir: conf_dir.to_path_buf(),
                source,
            })
        }
    };
    files.sort();
    let mut skipped = Vec::new();
    for path in files {
        match load_file(&path).and_then(|c| check_plugins(c, bin_dirs)) {
            Ok(config) => return Ok(config),
            Err(reason) => {
                tracing::debug!(path = %path.display(), %reason, "skipping CNI config");
                skipped.push(format!("{}: {reason}", path.display()));
            }
        }
    }
    Err(Error::NoConfig {
        dir: conf_dir.to_path_buf(),
        skipped,
    })
}

fn load_file(path: &Path) -> Result<NetworkConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    parse(path, &bytes)
}

/// Parses one configuration file's bytes.
fn parse(path: &Path, bytes: &[u8]) -> Result<NetworkConfig, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("no network name")?
        .to_string();
    let cni_version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0")
        .to_string();
    let plugins = match obj.get("plugins") {
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err("`plugins` is not a list".into()),
        // A single-plugin .conf file: the whole object is the plugin.
        None => vec![value.clone()],
    };
    if plugins.is_empty() {
        return Err("no plugins".into());
    }
    for plugin in &plugins {
        if plugin.get("type").and_then(Value::as_str).is_none() {
            return Err("a plugin has no `type`".into());
        }
    }
    Ok(NetworkConfig {
        path: path.to_path_buf(),
        name,
        cni_version,
        plugins,
    })
}

fn check_plugins(config: NetworkConfig, bin_dirs: &[PathBuf]) -> Result<NetworkConfig, String> {
    for ty in config.plugin_types() {
        if !bin_dirs.iter().any(|d| d.join(ty).is_file()) {
            return Err(format!("plugin `{ty}` not found in {bin_dirs:?}"));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).expect("write test file");
    }

    fn bins(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for n in names {
            std::fs::write(bin.join(n), "").expect("write plugin");
        }
        vec![dir.join("missing"), bin]
    }

    #[test]
    fn missing_dir_is_no_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = find_network(&tmp.path().join("nope"), &[]).expect_err("no config");
        assert!(matches!(err, Error::NoConfig { .. }), "{err}");
    }

    #[test]
    fn first_valid_file_in_name_order_wins() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let conf = tmp.path().join("net.d");
        std::fs::create_dir(&conf).expect("mkdir");
        write(&conf, "05-broken.conflist", "{not json");
        write(
            &conf,
            "10-a.conflist",
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        );
        write(
            &conf,
            "20-b.conf",
            r#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#,
        );
        write(&conf, "30-ignored.txt", "whatever");
        let bin = bins(tmp.path(), &["bridge", "portmap"]);
        let net = find_network(&conf, &bin).expect("found");
        assert_eq!(net.name, "a");
        assert_eq!(net.cni_version, "1.0.0");
        assert_eq!(
            net.plugin_types().collect::<Vec<_>>(),
            ["bridge", "portmap"]
        );
    }

    #[test]
    fn single_plugin_conf_is_lifted_to_a_list() {
        let net = parse(
            Path::new("x.conf"),
            br#"{"cniVersion":"0.4.0","name":"b","type":"bridge","bridge":"cni0"}"#,
        )
        .expect("parsed");
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.plugins[0]["bridge"], "cni0");
    }

    #[test]
    fn config_with_missing_plugin_binary_is_skipped_with_reason() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "10.conflist",
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"nosuch"}]}"#,
        );
        let bin = bins(tmp.path(), &["bridge"]);
        let err = find_network(tmp.path(), &bin).expect_err("missing plugin");
        let msg = err.to_string();
        assert!(msg.contains("plugin `nosuch` not found"), "{msg}");
    }

    #[test]
    fn the_packaged_default_network_is_valid() {
        let text = include_str!("../../../packaging/cni/10-corten-bridge.conflist");
        let net = parse(Path::new("10-corten-bridge.conflist"), text.as_bytes()).expect("valid");
        assert_eq!(net.name, "corten");
        assert_eq!(net.cni_version, "1.0.0");
        assert_eq!(
            net.plugin_types().collect::<Vec<_>>(),
            ["bridge", "portmap", "loopback"]
        );
        assert_eq!(
            net.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.88.0.0/16"
        );
    }

    #[test]
    fn invalid_documents_are_refused() {
        for (body, why) in [
            (r#"[1]"#, "not a JSON object"),
            (r#"{"plugins":[{"type":"x"}]}"#, "no network name"),
            (r#"{"name":"n","plugins":[]}"#, "no plugins"),
            (r#"{"name":"n","plugins":[{}]}"#, "no `type`"),
            (r#"{"name":"n","plugins":{}}"#, "not a list"),
        ] {
            let err = parse(Path::new("f"), body.as_bytes()).expect_err(body);
            assert!(err.contains(why), "{body}: {err}");
        }
    }
}
