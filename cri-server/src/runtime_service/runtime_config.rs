//! `RuntimeConfig`: the cgroup driver, which kubelet must match.

use corten_cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse,
};
use tonic::Status;

use crate::config;
use crate::service::Cri;

pub fn runtime_config(cri: &Cri, _: RuntimeConfigRequest) -> Result<RuntimeConfigResponse, Status> {
    let driver = match cri.config.cgroup.driver {
        config::CgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
    };
    Ok(RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    })
}
