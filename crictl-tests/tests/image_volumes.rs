//! Image volumes (Kubernetes ImageVolume, CRI `Mount.image` and
//! `Mount.image_sub_path`): an image's tree mounted read-only in a
//! container, all of it or a sub directory; bad requests refused with the
//! right code and nothing left; the image held against RemoveImage while a
//! container mounts it; a cortend killed with SIGKILL and restarted still
//! removes it all. The mounts live in the container's shim's mount
//! namespace: the host's never shows one.

mod container_env;

use container_env::Env;
use corten_cri_api::v1 as cri;
use crictl_tests::cri::{block_on, runtime, RuntimeClient};
use crictl_tests::{Compression, ImageBuilder, LayerBuilder};
use tonic::Code;

const HELLO: &str = "hello from the image volume\n";

/// The image mounted as a volume: busybox, with `data/hello.txt`,
/// `data/sub/inner.txt`, a symlink `link -> data` and a file `afile`.
fn push_volume_image(env: &Env) {
    let mut l = LayerBuilder::new();
    l.dir("data", 0o755).expect("layer");
    l.file("data/hello.txt", 0o644, HELLO.as_bytes())
        .expect("layer");
    l.dir("data/sub", 0o755).expect("layer");
    l.file("data/sub/inner.txt", 0o644, b"inner\n")
        .expect("layer");
    l.symlink("link", "data").expect("layer");
    l.file("afile", 0o644, b"x").expect("layer");
    let img = ImageBuilder::busybox()
        .layer(l.finish().expect("layer"))
        .build(Compression::Gzip)
        .expect("build");
    img.push(&env.reg, "library/volimg", "latest")
        .expect("push");
}

/// PullImage of `volimg`: the id it answers.
async fn pull(env: &Env) -> String {
    let mut images = crictl_tests::cri::images(env.d.socket())
        .await
        .expect("connect");
    images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "volimg".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("pull volimg")
        .into_inner()
        .image_ref
}

fn volume(path: &str, image: &str, sub: &str, readonly: bool) -> cri::Mount {
    cri::Mount {
        container_path: path.into(),
        readonly,
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        image_sub_path: sub.into(),
        ..Default::default()
    }
}

fn config(name: &str, mounts: Vec<cri::Mount>) -> cri::ContainerConfig {
    cri::ContainerConfig {
        mounts,
        ..crictl_tests::cri::sleeper(name)
    }
}

async fn create(
    c: &mut RuntimeClient,
    pod: &str,
    config: cri::ContainerConfig,
) -> Result<String, tonic::Status> {
    Ok(c.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(config),
        sandbox_config: None,
    })
    .await?
    .into_inner()
    .container_id)
}

/// ExecSync of `cmd`: exit code, stdout, stderr.
async fn exec(c: &mut RuntimeClient, id: &str, cmd: &[&str]) -> (i32, String, String) {
    let r = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 0,
        })
        .await
        .expect("exec")
        .into_inner();
    (
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

async fn remove_image(env: &Env, image: &str) -> Result<(), tonic::Status> {
    let mut images = crictl_tests::cri::images(env.d.socket())
        .await
        .expect("connect");
    images
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
        })
        .await
        .map(|_| ())
}

/// The host's mount points under the daemon's directory (bundles, layers).
fn host_mounts(env: &Env) -> Vec<String> {
    let dir = env.d.dir().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// The mount points of the mount namespace of process `pid` that mention
/// `what` (its bundle, its image volume mounts).
fn mounts_of(pid: i64, what: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

/// The container ids on disk (bundles).
fn bundles(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.d.dir().join("state/containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "trash")
        .collect()
}

async fn container_count(c: &mut RuntimeClient) -> usize {
    c.list_containers(cri::ListContainersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .containers
        .len()
}

#[test]
fn an_image_volume_is_mounted_read_only_and_held_against_removal() {
    let env = Env::new();
    push_volume_image(&env);
    let pod = env.pod("iv");
    block_on(async {
        let image_id = pull(&env).await;
        let mut c = runtime(env.d.socket()).await.expect("connect");
        let mounts_before = host_mounts(&env);
        let id = create(
            &mut c,
            &pod,
            config(
                "vol",
                vec![
                    // By id, as kubelet sends it; and by name.
                    volume("/vol", &image_id, "", true),
                    volume("/sub", "volimg", "data/sub", true),
                ],
            ),
        )
        .await
        .expect("create with image volumes");
        c.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("start");

        let (code, out, _) = exec(&mut c, &id, &["cat", "/vol/data/hello.txt"]).await;
        assert_eq!((code, out.as_str()), (0, HELLO), "the image's content");
        let (code, out, _) = exec(&mut c, &id, &["cat", "/sub/inner.txt"]).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "inner\n"),
            "the sub path's content"
        );
        let (code, _, _) = exec(&mut c, &id, &["ls", "/sub/hello.txt"]).await;
        assert_ne!(code, 0, "only the sub directory is mounted at /sub");
        for target in ["/vol/written", "/vol/data/hello.txt", "/sub/written"] {
            let (code, _, err) =
                exec(&mut c, &id, &["sh", "-c", &format!("echo x > {target}")]).await;
            assert_ne!(code, 0, "a write to {target} is refused");
            assert!(err.contains("Read-only"), "{target}: {err}");
        }
        let (code, out, err) = exec(&mut c, &id, &["/vol/bin/busybox", "echo", "ran"]).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "ran\n"),
            "a binary of the volume runs: {err}"
        );
        // The container still writes its own rootfs.
        let (code, _, err) = exec(&mut c, &id, &["touch", "/tmp/own"]).await;
        assert_eq!(code, 0, "{err}");

        let status = c
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await
            .expect("status")
            .into_inner()
            .status
            .expect("status");
        let shown = |path: &str| {
            status
                .mounts
                .iter()
                .find(|m| m.container_path == path)
                .unwrap_or_else(|| panic!("{path} in {:?}", status.mounts))
                .clone()
        };
        let (vol, sub) = (shown("/vol"), shown("/sub"));
        assert!(vol.readonly && vol.host_path.is_empty(), "{vol:?}");
        let spec = vol.image.clone().expect("the image");
        assert_eq!(
            (spec.image.as_str(), spec.image_ref.as_str()),
            (image_id.as_str(), image_id.as_str())
        );
        let spec = sub.image.clone().expect("the image");
        assert_eq!(
            (spec.image.as_str(), spec.image_ref.as_str()),
            ("volimg", image_id.as_str())
        );
        assert_eq!(sub.image_sub_path, "data/sub");

        // Never on the host: the shim's mount namespace holds them.
        assert_eq!(host_mounts(&env), mounts_before);

        // Held: RemoveImage is refused, naming the container, by any name.
        for name in ["volimg", image_id.as_str()] {
            let e = remove_image(&env, name)
                .await
                .expect_err("refused while mounted");
            assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
            assert!(e.message().contains(&id), "{}", e.message());
        }

        c.stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("stop");
        // Stopped but not removed: still held.
        let e = remove_image(&env, "volimg")
            .await
            .expect_err("still refused");
        assert_eq!(e.code(), Code::FailedPrecondition);
        c.remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove");
        remove_image(&env, "volimg")
            .await
            .expect("removable once the container is gone");
        let mut images = crictl_tests::cri::images(env.d.socket())
            .await
            .expect("connect");
        let gone = images
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: image_id.clone(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .expect("image status")
            .into_inner();
        assert!(gone.image.is_none(), "removed: {gone:?}");
        assert!(bundles(&env).is_empty(), "{:?}", bundles(&env));
        assert_eq!(host_mounts(&env), mounts_before);
    });
}

#[test]
fn bad_image_volumes_are_refused_and_leave_nothing() {
    let env = Env::new();
    push_volume_image(&env);
    let pod = env.pod("bad");
    block_on(async {
        let image_id = pull(&env).await;
        let mut c = runtime(env.d.socket()).await.expect("connect");
        let mounts_before = host_mounts(&env);
        let cases: Vec<(cri::Mount, Code, &str)> = vec![
            (
                volume("/v", &image_id, "not-there", true),
                Code::InvalidArgument,
                "not-there",
            ),
            (
                volume("/v", &image_id, "data/nope", true),
                Code::InvalidArgument,
                "data/nope",
            ),
            (
                volume("/v", &image_id, "../etc", true),
                Code::InvalidArgument,
                "../etc",
            ),
            (
                volume("/v", &image_id, "data/../..", true),
                Code::InvalidArgument,
                "data/../..",
            ),
            (
                volume("/v", &image_id, "/data", true),
                Code::InvalidArgument,
                "/data",
            ),
            (
                volume("/v", &image_id, "link", true),
                Code::InvalidArgument,
                "symbolic link",
            ),
            (
                volume("/v", &image_id, "link/sub", true),
                Code::InvalidArgument,
                "symbolic link",
            ),
            (
                volume("/v", &image_id, "afile", true),
                Code::InvalidArgument,
                "not a directory",
            ),
            (
                volume("/v", &image_id, "", false),
                Code::InvalidArgument,
                "read-only",
            ),
            (
                volume("/v", "no-such-image:1", "", true),
                Code::NotFound,
                "no-such-image:1",
            ),
            (
                cri::Mount {
                    host_path: "/tmp".into(),
                    ..volume("/v", &image_id, "", true)
                },
                Code::InvalidArgument,
                "host path",
            ),
        ];
        for (i, (mount, code, says)) in cases.into_iter().enumerate() {
            let shown = format!("{mount:?}");
            // A good volume beside the bad one: nothing of it may stay either.
            let mounts = vec![volume("/good", &image_id, "data", true), mount];
            let e = create(&mut c, &pod, config(&format!("bad{i}"), mounts))
                .await
                .expect_err(&shown);
            assert_eq!(e.code(), code, "{shown}: {e:?}");
            assert!(e.message().contains(says), "{shown}: {}", e.message());
            assert_eq!(container_count(&mut c).await, 0, "{shown}");
            assert!(bundles(&env).is_empty(), "{shown}: {:?}", bundles(&env));
            assert_eq!(host_mounts(&env), mounts_before, "{shown}");
        }
        // Nothing holds the image: it is removable.
        remove_image(&env, &image_id)
            .await
            .expect("nothing holds it");
    });
}

#[test]
fn cortend_killed_then_restarted_still_removes_image_volumes() {
    let mut env = Env::new();
    push_volume_image(&env);
    let pod = env.pod("crash");
    let (image_id, id, pid) = block_on(async {
        let image_id = pull(&env).await;
        let mut c = runtime(env.d.socket()).await.expect("connect");
        let id = create(
            &mut c,
            &pod,
            config("vol", vec![volume("/vol", &image_id, "data", true)]),
        )
        .await
        .expect("create");
        c.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("start");
        let (code, out, _) = exec(&mut c, &id, &["cat", "/vol/hello.txt"]).await;
        assert_eq!((code, out.as_str()), (0, HELLO));
        let info = c
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            })
            .await
            .expect("status")
            .into_inner()
            .info;
        let info: serde_json::Value =
            serde_json::from_str(info.get("info").expect("verbose info")).expect("json");
        (image_id, id, info["pid"].as_i64().expect("pid"))
    });
    assert!(
        !mounts_of(pid, "/vol").is_empty(),
        "the container sees its volume"
    );
    assert!(
        !host_mounts(&env).iter().any(|m| m.contains(&id)),
        "the host never sees the volume: {:?}",
        host_mounts(&env)
    );

    env.d.kill9();
    env.d.resume();
    block_on(async {
        let mut c = runtime(env.d.socket()).await.expect("connect");
        let (code, out, _) = exec(&mut c, &id, &["cat", "/vol/hello.txt"]).await;
        assert_eq!(
            (code, out.as_str()),
            (0, HELLO),
            "still mounted after the restart"
        );
        let e = remove_image(&env, "volimg")
            .await
            .expect_err("still held after the restart");
        assert_eq!(e.code(), Code::FailedPrecondition);
        // The pod's removal takes its container, and the volume, along.
        c.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("stop pod");
        c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("remove pod");
        assert_eq!(container_count(&mut c).await, 0);
        remove_image(&env, &image_id)
            .await
            .expect("released with the container");
    });
    assert!(bundles(&env).is_empty(), "{:?}", bundles(&env));
    // Nothing of the pod or its container stays mounted.
    assert_eq!(host_mounts(&env), Vec::<String>::new());
    crictl_tests::wait::until(
        "the container's processes to go",
        std::time::Duration::from_secs(30),
        || mounts_of(pid, "/vol").is_empty(),
    );
}

/// In a pod with a user namespace of its own, the volume's files are
/// id-mapped as the image's are: owned by container root, not `nobody`.
#[test]
fn an_image_volume_in_a_user_namespace_is_id_mapped() {
    let env = Env::new();
    push_volume_image(&env);
    let mapping = serde_json::json!([{"host_id": 200_000, "container_id": 0, "length": 65536}]);
    let ns = serde_json::json!({
        "pid": 1,
        "userns_options": {"mode": 0, "uids": mapping, "gids": mapping}
    });
    let pod = env.pod_with(
        "uns",
        serde_json::json!({"security_context": {"namespace_options": ns}}),
    );
    block_on(async {
        let image_id = pull(&env).await;
        let mut c = runtime(env.d.socket()).await.expect("connect");
        let ids = vec![cri::IdMapping {
            host_id: 200_000,
            container_id: 0,
            length: 65536,
        }];
        let mut config = config(
            "vol",
            vec![
                volume("/vol", &image_id, "", true),
                volume("/sub", &image_id, "data", true),
            ],
        );
        config.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Container as i32,
                    userns_options: Some(cri::UserNamespace {
                        mode: cri::NamespaceMode::Pod as i32,
                        uids: ids.clone(),
                        gids: ids,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let id = create(&mut c, &pod, config).await.expect("create");
        c.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("start");
        let (code, out, err) = exec(
            &mut c,
            &id,
            &[
                "stat",
                "-c",
                "%u:%g",
                "/vol/data/hello.txt",
                "/sub/hello.txt",
                "/vol",
            ],
        )
        .await;
        assert_eq!((code, out.as_str()), (0, "0:0\n0:0\n0:0\n"), "{err}");
        let (code, out, _) = exec(&mut c, &id, &["cat", "/sub/hello.txt"]).await;
        assert_eq!((code, out.as_str()), (0, HELLO));
        let (code, _, _) = exec(&mut c, &id, &["touch", "/vol/x"]).await;
        assert_ne!(code, 0, "read-only");
        let (code, out, _) = exec(&mut c, &id, &["/vol/bin/busybox", "echo", "ran"]).await;
        assert_eq!((code, out.as_str()), (0, "ran\n"));
        c.remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove");
        assert!(bundles(&env).is_empty(), "{:?}", bundles(&env));
    });
}

/// cortend aborted (as by `kill -9`) at each crash point of creating and
/// removing a container with an image volume, then restarted: the pod's
/// removal leaves no container, bundle or mount, and the image is free.
#[test]
fn a_crash_at_any_point_of_an_image_volume_leaves_nothing_after_restart() {
    use corten_runtime::crash;
    let mut env = Env::new();
    push_volume_image(&env);
    for point in [
        "container.create.after_bundle",
        "container.create.after_shim",
        "container.remove.after_stop",
        "container.remove.after_delete",
    ] {
        let pod = env.pod(&point.replace(['.', '_'], "-"));
        let image_id = block_on(pull(&env));
        let make = |env: &Env| {
            block_on(async {
                let mut c = runtime(env.d.socket()).await.expect("connect");
                let config = config("vol", vec![volume("/vol", &image_id, "data", true)]);
                let id = create(&mut c, &pod, config).await?;
                c.start_container(cri::StartContainerRequest {
                    container_id: id.clone(),
                })
                .await?;
                Ok::<_, tonic::Status>(id)
            })
        };
        let removing = point.starts_with("container.remove");
        let made = removing.then(|| make(&env).expect("created before the crash"));
        env.d.set_env(crash::ENV, Some(point));
        env.d.restart();
        match &made {
            Some(id) => {
                let id = id.clone();
                let _ = block_on(async {
                    let mut c = runtime(env.d.socket()).await.expect("connect");
                    c.remove_container(cri::RemoveContainerRequest { container_id: id })
                        .await
                });
            }
            None => {
                let _ = make(&env);
            }
        }
        crictl_tests::wait::until(
            &format!("cortend aborts at {point}"),
            std::time::Duration::from_secs(60),
            || env.d.exited(),
        );
        assert!(
            env.d
                .log()
                .contains(&format!("crash point {point} reached")),
            "{point} not reached:\n{}",
            env.d.log()
        );
        env.d.set_env(crash::ENV, None);
        env.d.resume();
        block_on(async {
            let mut c = runtime(env.d.socket()).await.expect("connect");
            c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .expect("stop pod");
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .expect("remove pod");
            assert_eq!(container_count(&mut c).await, 0, "{point}");
            remove_image(&env, &image_id)
                .await
                .unwrap_or_else(|e| panic!("{point}: the image is free: {e:?}"));
        });
        crictl_tests::wait::until(
            &format!("{point}: no bundle left"),
            std::time::Duration::from_secs(30),
            || bundles(&env).is_empty(),
        );
        assert_eq!(host_mounts(&env), Vec::<String>::new(), "{point}");
        println!("crash point {point} with an image volume: nothing left");
    }
}
