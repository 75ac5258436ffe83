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

#[test]
fn hooks_land_at_their_points_and_bad_ones_are_refused() {
    let mut c = config();
    assert!(gen(&c).hooks().is_none(), "no hooks, no section");
    let hook = |point: &str, path: &str| HookConfig {
        point: point.into(),
        path: path.into(),
        args: vec!["hook".into(), point.into()],
        env: vec!["A=1".into()],
        timeout: Some(5),
    };
    c.hooks = vec![
        hook("createContainer", "/usr/bin/vendor-hook"),
        hook("poststop", "/usr/bin/cleanup"),
        hook("createContainer", "/usr/bin/second"),
    ];
    let spec = gen(&c);
    let hooks = spec.hooks().clone().expect("hooks");
    let created = hooks.create_container().clone().expect("createContainer");
    let paths: Vec<_> = created.iter().map(|h| h.path().clone()).collect();
    assert_eq!(
        paths,
        [
            std::path::PathBuf::from("/usr/bin/vendor-hook"),
            "/usr/bin/second".into()
        ]
    );
    assert_eq!(created[0].timeout(), Some(5));
    assert_eq!(created[0].env().clone(), Some(vec!["A=1".to_string()]));
    assert_eq!(hooks.poststop().as_ref().map(Vec::len), Some(1));
    assert!(hooks.prestart().is_none() && hooks.start_container().is_none());

    for (bad, needle) in [
        (hook("atBoot", "/x"), "not an OCI hook point"),
        (hook("poststart", "relative/x"), "not absolute"),
    ] {
        c.hooks = vec![bad];
        let err = generate(&c, &image(), &rootfs()).expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains(needle), "{err}");
    }
}
