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

use corten_runtime::spec::ContainerConfig;
use k8s_cri::v1 as cri;
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
) -> Result<(), Status> {
    let names = requested(request)?;
    if names.is_empty() {
        return Ok(());
    }
    corten_runtime::blocking::run(|| {
        let registry = Registry::scan(dirs);
        let devices = registry.resolve(&names)?;
        edits::apply(&devices, config)
    })
}
