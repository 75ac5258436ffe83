//! Capabilities from the spec, through the `caps` crate.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::error::{Error, Result};

fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("CAP_{cap}"));
        let known = Capability::from_str(&name)
            .map_err(|_| Error::InvalidSpec(format!("unknown capability {name}")))?;
        out.insert(known);
    }
    Ok(out)
}

fn caps_err(what: &str) -> impl FnOnce(caps::errors::CapsError) -> Error + '_ {
    move |e| Error::Io {
        op: what.to_owned(),
        source: std::io::Error::other(e),
    }
}

/// The spec's sets, converted (checked in the parent, before the fork).
#[derive(Debug, Clone, Default)]
pub(super) struct Sets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl Sets {
    pub(super) fn new(c: &LinuxCapabilities) -> Result<Sets> {
        Ok(Sets {
            bounding: convert(c.bounding())?,
            effective: convert(c.effective())?,
            permitted: convert(c.permitted())?,
            inheritable: convert(c.inheritable())?,
            ambient: convert(c.ambient())?,
        })
    }

    /// Drops what the bounding set does not keep. Needs CAP_SETPCAP, so it
    /// runs before the user switch. Capabilities this kernel lacks are
    /// skipped.
    pub(super) fn drop_bounding(&self) -> Result<()> {
        for cap in caps::runtime::thread_all_supported() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(caps_err("drop from the bounding capability set"))?;
            }
        }
        Ok(())
    }

    /// Sets the process's sets (after the user switch, with KEEPCAPS on).
    pub(super) fn apply(&self) -> Result<()> {
        let supported = caps::runtime::thread_all_supported();
        let only =
            |s: &CapsHashSet| -> CapsHashSet { s.intersection(&supported).copied().collect() };
        // Inheritable while the permitted set is still whole, then effective
        // (a subset of permitted), then permitted, then ambient (which needs
        // each capability in both permitted and inheritable).
        caps::set(None, CapSet::Inheritable, &only(&self.inheritable))
            .map_err(caps_err("set inheritable capabilities"))?;
        caps::set(None, CapSet::Effective, &only(&self.effective))
            .map_err(caps_err("set effective capabilities"))?;
        caps::set(None, CapSet::Permitted, &only(&self.permitted))
            .map_err(caps_err("set permitted capabilities"))?;
        caps::set(None, CapSet::Ambient, &only(&self.ambient))
            .map_err(caps_err("set ambient capabilities"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability as OciCap;

    #[test]
    fn converts_oci_names() {
        let set: Capabilities = [OciCap::SysAdmin, OciCap::NetBindService]
            .into_iter()
            .collect();
        let got = convert(&Some(set)).unwrap();
        assert!(got.contains(&Capability::CAP_SYS_ADMIN));
        assert!(got.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert_eq!(got.len(), 2);
    }
}
