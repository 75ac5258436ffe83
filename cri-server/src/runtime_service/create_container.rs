//! `CreateContainer`: a container of a pod from an image and a CRI config.

use corten_cri_api::v1::{CreateContainerRequest, CreateContainerResponse};
use tonic::Status;

use super::pod_lookup::pod_context;
use corten_runtime::PidNamespace;

use crate::cdi;
use crate::convert::container::{new_container, pid_choice, PidChoice};
use crate::error::CriError;
use crate::service::Cri;

pub async fn create_container(
    cri: &Cri,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let config = req
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config is required"))?;
    let mut new = new_container(config)?;
    let pod = pod_context(cri, &req.pod_sandbox_id)?;
    check_handler_features(cri, &pod.runtime_handler, &new.config)?;
    // An external runtime runs OCI hooks; the built-in core runs none.
    let hooks_run = !pod.runtime_handler.is_empty();
    cdi::inject(
        &cri.config.cdi.spec_dirs,
        config,
        &mut new.config,
        hooks_run,
    )?;
    crate::convert::userns::check_container_config(config, pod.user.as_ref())?;
    let pid = match pid_choice(config)? {
        PidChoice::Pod => PidNamespace::Pod,
        PidChoice::Container => PidNamespace::Own,
        PidChoice::Node => PidNamespace::Host,
        PidChoice::Target(target) => PidNamespace::Target(target),
    };
    // The annotations containerd puts in the OCI spec, for tools that
    // look for them (the record keeps the request's own).
    let cri_annotations = [
        ("io.kubernetes.cri.container-type", "container".to_string()),
        ("io.kubernetes.cri.container-name", new.name.clone()),
        ("io.kubernetes.cri.sandbox-id", pod.pod_id.to_string()),
        ("io.kubernetes.cri.sandbox-name", pod.name.clone()),
        ("io.kubernetes.cri.sandbox-namespace", pod.namespace.clone()),
        ("io.kubernetes.cri.sandbox-uid", pod.uid.clone()),
        ("io.kubernetes.cri.image-name", new.image.clone()),
    ];
    for (key, value) in cri_annotations {
        new.config.annotations.insert(key.to_string(), value);
    }
    let container_id = cri
        .runtime
        .create_container(&pod.pod_id, new, pid)
        .await
        .map_err(CriError)?;
    Ok(CreateContainerResponse {
        container_id: container_id.to_string(),
    })
}

/// Refuses what the pod's runtime handler does not support (kubelet asks
/// only for what Status advertises; another client may ask anyway).
fn check_handler_features(
    cri: &Cri,
    handler: &str,
    config: &corten_runtime::spec::ContainerConfig,
) -> Result<(), Status> {
    let Some(h) = cri.handler(handler) else {
        return Err(Status::failed_precondition(format!(
            "the pod was run with runtime handler {handler:?}, which is not configured any more"
        )));
    };
    if let Some(m) = config.mounts.iter().find(|m| m.recursive_readonly) {
        if !h.features.recursive_read_only_mounts {
            return Err(Status::invalid_argument(format!(
                "mount {:?}: recursive read-only mounts are not supported by runtime handler {handler:?}",
                m.container_path
            )));
        }
    }
    Ok(())
}
