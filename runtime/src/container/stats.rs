//! Resource usage of a container: its cgroup's counters and the disk its
//! writable layer takes.

use super::{ContainerRuntime, Error};
use crate::cgroups::{self, Cgroup, CgroupStats};
use crate::shim::protocol::files;
use crate::snapshot::{disk_usage, Usage};

/// What a container uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    /// The cgroup's counters; `None` once the cgroup is gone (the container exited).
    pub cgroup: Option<CgroupStats>,
    /// The writable layer's bytes and inodes.
    pub writable_layer: Usage,
}

impl ContainerRuntime {
    /// The container's current resource usage.
    pub fn stats(&self, id: &str) -> Result<ContainerStats, crate::Error> {
        let cgroup = match self.cgroup_of(id)? {
            Some(cg) => Some(cg.stats()?),
            None => None,
        };
        let upper = self.writable_layer(id).join("upper");
        let writable_layer = disk_usage(&upper)?;
        Ok(ContainerStats {
            cgroup,
            writable_layer,
        })
    }

    /// The cgroup of container `id`, from its spec; `None` when it has
    /// none or it is gone (the container exited). NotFound for an unknown
    /// container.
    pub(super) fn cgroup_of(&self, id: &str) -> Result<Option<Cgroup>, crate::Error> {
        let bundle = self.bundle(id);
        if !bundle.is_dir() {
            return Err(Error::NotFound { id: id.to_string() }.into());
        }
        let spec_path = bundle.join(files::SPEC);
        let spec = files::read_spec(&spec_path).map_err(|source| Error::Spec {
            id: id.to_string(),
            path: spec_path.clone(),
            source,
        })?;
        let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else {
            return Ok(None);
        };
        let hierarchy = cgroups::detect()?;
        match Cgroup::open(&hierarchy, &path.to_string_lossy()) {
            Ok(cg) => Ok(Some(cg)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
