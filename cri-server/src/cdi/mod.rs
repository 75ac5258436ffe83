//! CDI (Container Device Interface) devices: the names a container asks
//! for (the CRI `CDI_devices` field and `cdi.k8s.io/*` annotations),
//! resolved against the vendors' spec files, whose edits become the
//! container config's own devices, mounts, variables and groups. The
//! specification: cncf-tags/container-device-interface, SPEC.md.

mod edits;
mod names;
mod registry;
mod spec;

use std::path::PathBuf;

use corten_cri_api::v1 as cri;
use corten_runtime::spec::ContainerConfig;
use tonic::Status;

use names::requested;
use registry::Registry;

/// Adds to `config` the edits of the CDI devices `request` asks for, read
/// from the spec files of `dirs`. Nothing is read for a request that asks
/// for none; otherwise the files are read again (off the async workers),
/// so a device a driver has just written a spec for is found. An unknown
/// or malformed name, or an edit that cannot be made, is InvalidArgument.
pub fn inject(
    dirs: &[PathBuf],
    request: &cri::ContainerConfig,
    config: &mut ContainerConfig,
    hooks_run: bool,
) -> Result<(), Status> {
    let names = requested(request)?;
    if names.is_empty() {
        return Ok(());
    }
    corten_runtime::blocking::run(|| {
        let registry = Registry::scan(dirs);
        let devices = registry.resolve(&names)?;
        edits::apply(&devices, config, hooks_run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_adds_the_devices_a_request_names_and_nothing_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            tmp.path().join("v.json"),
            r#"{"cdiVersion":"0.5.0","kind":"example.com/dev","containerEdits":{"env":["V=1"]},
                "devices":[{"name":"null","containerEdits":{"deviceNodes":[
                  {"path":"/dev/vendor-null","hostPath":"/dev/null"}]}}]}"#,
        )
        .expect("write");
        let dirs = [tmp.path().to_path_buf()];
        let mut config = ContainerConfig::default();
        inject(&dirs, &cri::ContainerConfig::default(), &mut config, false).expect("no devices");
        assert_eq!(config, ContainerConfig::default());

        let request = cri::ContainerConfig {
            cdi_devices: vec![cri::CdiDevice {
                name: "example.com/dev=null".into(),
            }],
            ..cri::ContainerConfig::default()
        };
        inject(&dirs, &request, &mut config, false).expect("known");
        assert_eq!(config.env, [("V".to_string(), "1".to_string())]);
        assert_eq!(config.devices.len(), 1);
        assert_eq!(config.devices[0].container_path, "/dev/vendor-null");

        let unknown = cri::ContainerConfig {
            cdi_devices: vec![cri::CdiDevice {
                name: "example.com/dev=zero".into(),
            }],
            ..cri::ContainerConfig::default()
        };
        let mut untouched = ContainerConfig::default();
        let e = inject(&dirs, &unknown, &mut untouched, false).expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(untouched, ContainerConfig::default());
    }
}
