//! The runtime handlers of the configuration, as Status reports them: the
//! built-in core "" and each `[runtimes.<name>]`, with the features its
//! runtime declares in `<runtime> features` (the OCI runtime features
//! document); a runtime without that command declares none.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;

/// How long a runtime gets to answer `features` at start.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one handler supports, as Status reports it (the CRI fields, and
/// all of it in the verbose `features` info).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerFeatures {
    /// Recursive read-only mounts (the `rro` mount option).
    pub recursive_read_only_mounts: bool,
    /// User namespaces for pods, with id-mapped mounts.
    pub user_namespaces: bool,
    /// Image volumes (CRI `Mount.image`). Every handler has them: the
    /// shim mounts the image in its own mount namespace before any runtime
    /// runs, and the container gets a bind mount of it.
    pub image_volumes: bool,
}

/// One handler by name ("" is the built-in core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// The handler's name.
    pub name: String,
    /// What it supports.
    pub features: HandlerFeatures,
}

/// What the built-in core supports.
pub fn builtin() -> Handler {
    Handler {
        name: String::new(),
        features: HandlerFeatures {
            recursive_read_only_mounts: true,
            // Pods with `userns_options` mode POD (convert/userns.rs).
            user_namespaces: true,
            image_volumes: true,
        },
    }
}

/// Every handler of `config`, the built-in core first, each configured
/// runtime probed; a runtime binary that cannot be run refuses the start.
pub async fn probe_all(config: &Config) -> anyhow::Result<Vec<Handler>> {
    let mut all = vec![builtin()];
    for (name, h) in &config.runtimes {
        let mut features = probe(&h.path)
            .await
            .with_context(|| format!("runtimes.{name}: cannot use {}", h.path.display()))?;
        // The spec an external runtime gets joins the pod's user namespace
        // and has id-mapped layers, but its bind mounts carry no id maps
        // yet: volumes would show shifted owners. Not advertised until they do.
        features.user_namespaces = false;
        tracing::info!(handler = %name, runtime = %h.path.display(), ?features, "runtime handler");
        all.push(Handler {
            name: name.clone(),
            features,
        });
    }
    Ok(all)
}

/// Runs `<runtime> features`; a runtime that has no such command (an exit
/// status other than 0) supports none of the optional features.
pub async fn probe(runtime: &Path) -> anyhow::Result<HandlerFeatures> {
    let mut cmd = tokio::process::Command::new(runtime);
    cmd.arg("features")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("`features` did not answer within {PROBE_TIMEOUT:?}"))?
        .context("cannot run it")?;
    if !out.status.success() {
        tracing::info!(
            runtime = %runtime.display(),
            status = %out.status,
            "the runtime has no `features` command: no optional features assumed"
        );
        // Nothing the runtime itself must do (image volumes are the shim's).
        return Ok(from_document(&serde_json::Value::Null));
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .context("`features` printed something other than JSON")?;
    Ok(from_document(&doc))
}

/// The features of an OCI runtime features document.
pub fn from_document(doc: &serde_json::Value) -> HandlerFeatures {
    let has = |list: &serde_json::Value, item: &str| {
        list.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(item)))
    };
    let linux = &doc["linux"];
    HandlerFeatures {
        recursive_read_only_mounts: has(&doc["mountOptions"], "rro"),
        // A user namespace and id-mapped mounts for its volumes.
        user_namespaces: has(&linux["namespaces"], "user")
            && linux["mountExtensions"]["idmap"]["enabled"].as_bool() == Some(true),
        // Made by the shim, whatever the runtime (see the field).
        image_volumes: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_documents() {
        let old = serde_json::json!({
            "mountOptions": ["bind", "ro"],
            "linux": {"namespaces": ["mount", "user"]}
        });
        assert_eq!(
            from_document(&old),
            HandlerFeatures {
                image_volumes: true,
                ..HandlerFeatures::default()
            }
        );
        let new = serde_json::json!({
            "mountOptions": ["bind", "rro"],
            "linux": {
                "namespaces": ["mount", "user"],
                "mountExtensions": {"idmap": {"enabled": true}}
            }
        });
        assert_eq!(
            from_document(&new),
            HandlerFeatures {
                recursive_read_only_mounts: true,
                user_namespaces: true,
                image_volumes: true,
            }
        );
        assert_eq!(
            from_document(&serde_json::json!("x")),
            HandlerFeatures {
                image_volumes: true,
                ..HandlerFeatures::default()
            }
        );
    }

    #[tokio::test]
    async fn a_runtime_without_the_command_has_no_features_and_a_missing_one_is_an_error() {
        // `false features` exits 1, as a runtime without the command does.
        assert_eq!(
            probe(Path::new("/bin/false")).await.expect("probe"),
            HandlerFeatures {
                image_volumes: true,
                ..HandlerFeatures::default()
            }
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let err = probe(&dir.path().join("none")).await.expect_err("missing");
        assert!(format!("{err:#}").contains("cannot run it"), "{err:#}");
    }
}
