//! `Status`: RuntimeReady and NetworkReady, the runtime handlers and
//! features, and with `verbose` the effective configuration and what each
//! handler supports (what `crictl info` prints).

use std::collections::HashMap;

use corten_cri_api::v1::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus,
    StatusRequest, StatusResponse,
};
use tonic::Status;

use crate::service::Cri;

/// Condition types and the reason kubelet knows for a network that is not ready.
const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";
const NETWORK_NOT_READY_REASON: &str = "NetworkPluginNotReady";

pub fn status(cri: &Cri, req: StatusRequest) -> Result<StatusResponse, Status> {
    // Read on every call: a config dropped in later makes the node ready
    // without restarting the daemon.
    let network = cri.runtime.pods().network();
    let network_condition = match &network {
        Ok(_) => condition(NETWORK_READY, true, "", String::new()),
        Err(e) => condition(
            NETWORK_READY,
            false,
            NETWORK_NOT_READY_REASON,
            e.to_string(),
        ),
    };
    let mut info = HashMap::new();
    if req.verbose {
        let config = serde_json::to_string(&cri.config)
            .map_err(|e| Status::internal(format!("cannot render the configuration: {e}")))?;
        info.insert("config".to_string(), config);
        let cni_status = match &network {
            Ok(net) => serde_json::json!({
                "status": "OK",
                "name": net.name,
                "path": net.path,
                "cniVersion": net.cni_version,
                "plugins": net.plugin_types().collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({ "status": "NotReady", "error": e.to_string() }),
        };
        info.insert("cniconfig".to_string(), cni_status.to_string());
        info.insert(
            "handlerFeatures".to_string(),
            features_info(cri).to_string(),
        );
    }
    Ok(StatusResponse {
        status: Some(RuntimeStatus {
            conditions: vec![
                condition(RUNTIME_READY, true, "", String::new()),
                network_condition,
            ],
        }),
        info,
        runtime_handlers: cri
            .handlers
            .iter()
            .map(|h| RuntimeHandler {
                name: h.name.clone(),
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: h.features.recursive_read_only_mounts,
                    user_namespaces: h.features.user_namespaces,
                }),
            })
            .collect(),
        features: Some(RuntimeFeatures {
            supplemental_groups_policy: SUPPLEMENTAL_GROUPS_POLICY,
            user_namespaces_host_network: USER_NAMESPACES_HOST_NETWORK,
        }),
    })
}

/// ContainerStatus reports the process user, and Strict/Merge supplemental
/// group policies are honoured: the groups are resolved by corten into the
/// spec, so for every handler.
const SUPPLEMENTAL_GROUPS_POLICY: bool = true;
/// A pod with a user namespace cannot use the host's network namespace:
/// RunPodSandbox refuses it (`Pods::run`).
const USER_NAMESPACES_HOST_NETWORK: bool = false;

/// The verbose `handlerFeatures` info (not `features`: crictl info shows
/// the response's RuntimeFeatures under that name): the runtime-wide
/// features, and every handler's, by name ("" is the built-in core).
fn features_info(cri: &Cri) -> serde_json::Value {
    let handlers: serde_json::Map<String, serde_json::Value> = cri
        .handlers
        .iter()
        .map(|h| {
            let features = serde_json::to_value(&h.features).unwrap_or_default();
            (h.name.clone(), features)
        })
        .collect();
    serde_json::json!({
        "supplementalGroupsPolicy": SUPPLEMENTAL_GROUPS_POLICY,
        "userNamespacesHostNetwork": USER_NAMESPACES_HOST_NETWORK,
        "handlers": handlers,
    })
}

fn condition(kind: &str, status: bool, reason: &str, message: String) -> RuntimeCondition {
    RuntimeCondition {
        r#type: kind.to_string(),
        status,
        reason: reason.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    async fn cri_with_cni(conf_dir: &std::path::Path, bin_dir: &std::path::Path) -> Cri {
        let mut config = Config {
            root_dir: conf_dir.join("root"),
            ..Config::default()
        };
        config.cni.conf_dir = conf_dir.to_path_buf();
        config.cni.bin_dirs = vec![bin_dir.to_path_buf()];
        Cri::open(config).await.expect("open")
    }

    fn network_condition(resp: &StatusResponse) -> &RuntimeCondition {
        let conds = &resp.status.as_ref().expect("status").conditions;
        conds
            .iter()
            .find(|c| c.r#type == NETWORK_READY)
            .expect("NetworkReady")
    }

    #[tokio::test]
    async fn network_becomes_ready_when_a_config_appears() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cri = cri_with_cni(tmp.path(), tmp.path()).await;
        let resp = status(&cri, StatusRequest { verbose: false }).expect("status");
        let net = network_condition(&resp);
        assert!(!net.status);
        assert_eq!(net.reason, NETWORK_NOT_READY_REASON);
        assert!(
            net.message.contains("no valid CNI network config"),
            "{}",
            net.message
        );
        assert!(resp.info.is_empty());

        std::fs::write(tmp.path().join("loopback"), "").expect("plugin");
        std::fs::write(
            tmp.path().join("10-lo.conflist"),
            r#"{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}"#,
        )
        .expect("conf");
        let resp = status(&cri, StatusRequest { verbose: true }).expect("status");
        assert!(network_condition(&resp).status);
        let cni: serde_json::Value =
            serde_json::from_str(&resp.info["cniconfig"]).expect("cniconfig json");
        assert_eq!(cni["name"], "lo");
        let config: serde_json::Value =
            serde_json::from_str(&resp.info["config"]).expect("config json");
        assert_eq!(config["cni"]["conf_dir"], tmp.path().display().to_string());
    }

    #[tokio::test]
    async fn features_agree_with_the_handlers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cri = cri_with_cni(tmp.path(), tmp.path()).await;
        let resp = status(&cri, StatusRequest { verbose: true }).expect("status");
        let features = resp.features.expect("features");
        assert!(features.supplemental_groups_policy);
        assert!(!features.user_namespaces_host_network);
        let info: serde_json::Value =
            serde_json::from_str(&resp.info["handlerFeatures"]).expect("features json");
        assert_eq!(info["supplementalGroupsPolicy"], true);
        assert_eq!(info["userNamespacesHostNetwork"], false);
        assert_eq!(resp.runtime_handlers.len(), cri.handlers.len());
        for (h, cri_h) in cri.handlers.iter().zip(&resp.runtime_handlers) {
            assert_eq!(h.name, cri_h.name);
            let f = cri_h.features.expect("handler features");
            let shown = &info["handlers"][h.name.as_str()];
            assert_eq!(
                shown["recursiveReadOnlyMounts"],
                f.recursive_read_only_mounts
            );
            assert_eq!(shown["userNamespaces"], f.user_namespaces);
            assert_eq!(shown["imageVolumes"], h.features.image_volumes);
        }
        let builtin = &info["handlers"][""];
        assert_eq!(builtin["userNamespaces"], true);
        assert_eq!(builtin["recursiveReadOnlyMounts"], true);
    }
}
