//! Tests of [`super::generate`]: shared helpers.

use std::collections::HashMap;

use oci_spec::runtime::Spec;

use super::*;

mod defaults_and_process;
mod isolation;

pub(super) struct Files(pub(super) HashMap<&'static str, &'static str>);

impl RootfsView for Files {
    fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).map(|s| s.as_bytes().to_vec())
    }
}

pub(super) fn rootfs() -> Files {
    Files(HashMap::from([
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        ("/etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"),
    ]))
}

pub(super) fn image() -> ImageConfig {
    ImageConfig {
        cmd: vec!["/bin/sh".into()],
        ..Default::default()
    }
}

pub(super) fn config() -> ContainerConfig {
    ContainerConfig {
        id: "c1".into(),
        cgroup_path: "/corten/c1".into(),
        ..Default::default()
    }
}

pub(super) fn gen(c: &ContainerConfig) -> Spec {
    generate(c, &image(), &rootfs()).expect("generate")
}

pub(super) fn cap_names(spec: &Spec) -> Vec<String> {
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .expect("caps");
    let mut names: Vec<String> = caps
        .effective()
        .iter()
        .flatten()
        .map(|c| c.to_string())
        .collect();
    names.sort();
    names
}

pub(super) fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
