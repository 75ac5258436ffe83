//! Issue 6, end to end: listing and filtering containers, ids by prefix,
//! images in use, and containers going with their pod.

mod container_env;

use std::time::Duration;

use container_env::Env;
use crictl_tests::wait;
use serde_json::json;

fn ids(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["ps", "-q", "--no-trunc"];
    all.extend_from_slice(args);
    let mut out: Vec<String> = env
        .d
        .crictl(&all)
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn list_filters_by_state_pod_label_and_id_prefix() {
    let env = Env::new();
    let p1 = env.pod("one");
    let p2 = env.pod("two");
    let mut web = env.container_config("web", &["sleep", "3600"]);
    web["labels"] = json!({"app": "web", "tier": "front"});
    let web = env.create(&p1, "one", &web);
    env.d.crictl(&["start", &web]).ok();
    let mut db = env.container_config("db", &["sleep", "3600"]);
    db["labels"] = json!({"app": "db"});
    let db = env.create(&p2, "two", &db);
    let done = env.run(&p2, "two", "done", &["true"]);
    env.wait_state(&done, "CONTAINER_EXITED", Duration::from_secs(20));

    assert_eq!(ids(&env, &[]), [web.as_str()], "running only by default");
    assert_eq!(
        ids(&env, &["-a"]),
        sorted(vec![web.clone(), db.clone(), done.clone()])
    );
    assert_eq!(ids(&env, &["-a", "--state", "created"]), [db.as_str()]);
    assert_eq!(ids(&env, &["-a", "--state", "exited"]), [done.as_str()]);
    assert_eq!(
        ids(&env, &["-a", "--pod", &p2]),
        sorted(vec![db.clone(), done.clone()])
    );
    assert_eq!(
        ids(&env, &["-a", "--pod", &p2[..8]]),
        sorted(vec![db.clone(), done.clone()])
    );
    assert_eq!(ids(&env, &["-a", "--label", "app=web"]), [web.as_str()]);
    assert_eq!(
        ids(&env, &["-a", "--label", "app=web", "--label", "tier=back"]),
        Vec::<String>::new()
    );
    assert_eq!(ids(&env, &["-a", "--id", &db[..12]]), [db.as_str()]);
    assert_eq!(ids(&env, &["-a", "--name", "^do"]), [done.as_str()]);

    // A short id is accepted wherever crictl passes it through.
    let v = env.inspect(&web[..10]);
    assert_eq!(v["status"]["id"], web.as_str());
    assert_eq!(v["status"]["labels"]["tier"], "front", "{v}");
    assert_eq!(v["status"]["metadata"]["name"], "web", "{v}");
    assert!(
        v["status"]["imageRef"]
            .as_str()
            .is_some_and(|r| r.contains("@sha256:")),
        "{v}"
    );
    assert!(v["info"]["pid"].as_u64().is_some_and(|p| p > 1), "{v}");
    env.d.crictl(&["inspect", "0000000000000"]).fails();
}

#[test]
fn an_image_in_use_can_be_removed_and_its_containers_keep_running() {
    let env = Env::new();
    let pod = env.pod("img");
    let created = env.create(
        &pod,
        "img",
        &env.container_config("later", &["ls", "/bin/sh"]),
    );
    let running = env.run(&pod, "img", "now", &["sleep", "3600"]);
    env.d.crictl(&["rmi", "busybox"]).ok();
    assert!(env.d.crictl(&["images", "-q"]).ok().trim().is_empty());
    // The layers stay while containers use them.
    env.d.crictl(&["start", &created]).ok();
    let v = env.wait_state(&created, "CONTAINER_EXITED", Duration::from_secs(20));
    assert_eq!(v["status"]["exitCode"], 0, "{v}");
    let out = env
        .d
        .crictl(&["exec", "-s", &running, "ls", "/bin/busybox"])
        .ok();
    assert!(out.contains("/bin/busybox"), "{out}");
    // A new container needs the image again.
    let err = env
        .try_create(&pod, "img", &env.container_config("new", &["true"]))
        .fails();
    assert!(err.contains("not found"), "{err}");
    env.d.crictl(&["rm", "-f", &running, &created]).ok();
    let snapshots = env.d.root_dir().join("snapshots");
    let left = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&snapshots)
            .expect("snapshots")
            .flatten()
            .filter(|e| e.file_name() != "tmp" && e.file_name() != "usage")
            .map(|e| e.path())
            .collect()
    };
    // Collected in the background once unused.
    let collected = wait::within(Duration::from_secs(30), || left().is_empty());
    assert!(collected, "layers kept: {:?}", left());
}

#[test]
fn removing_a_pod_removes_its_running_containers() {
    let env = Env::new();
    let pod = env.pod("gone");
    let a = env.run(&pod, "gone", "a", &["sleep", "3600"]);
    let b = env.create(&pod, "gone", &env.container_config("b", &["sleep", "3600"]));
    let other = env.pod("stays");
    let c = env.run(&other, "stays", "c", &["sleep", "3600"]);

    // The pod's status carries its containers' statuses (and only its own).
    let statuses = crictl_tests::cri::block_on(async {
        let mut client = crictl_tests::cri::runtime(env.d.socket())
            .await
            .expect("connect");
        client
            .pod_sandbox_status(corten_cri_api::v1::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .expect("pod status")
            .into_inner()
            .containers_statuses
    });
    let mut in_pod: Vec<String> = statuses.iter().map(|s| s.id.clone()).collect();
    in_pod.sort();
    assert_eq!(in_pod, sorted(vec![a.clone(), b.clone()]));

    env.d.crictl(&["stopp", &pod]).ok();
    assert_eq!(env.state(&a), "CONTAINER_EXITED");
    assert_eq!(env.state(&c), "CONTAINER_RUNNING");
    env.d.crictl(&["rmp", &pod]).ok();
    let left = ids(&env, &["-a"]);
    assert_eq!(left, [c.as_str()], "a and b went with their pod");
    assert!(!left.contains(&b));
    // A container cannot be made in a stopped pod.
    env.d.crictl(&["stopp", &other]).ok();
    let err = env
        .try_create(&other, "stays", &env.container_config("late", &["true"]))
        .fails();
    assert!(err.contains("not ready"), "{err}");
}

/// kubelet creates containers by image id, naming the image it resolved in
/// `user_specified_image`: status and list show that name (as CRI-O does),
/// and the image's repo tag when only the id was given (as containerd
/// does); `image_ref` is the digest reference either way.
#[test]
fn status_shows_the_image_the_user_asked_for() {
    let env = Env::new();
    let pod = env.pod("named");
    let image_id = env.d.crictl(&["inspecti", "-o", "json", "busybox"]).json()["status"]["id"]
        .as_str()
        .expect("image id")
        .to_string();
    let shown = crictl_tests::cri::block_on(async {
        let mut client = crictl_tests::cri::runtime(env.d.socket())
            .await
            .expect("connect");
        let mut shown = Vec::new();
        for (name, user) in [("by-name", "busybox:latest"), ("by-id", "")] {
            let mut config = crictl_tests::cri::sleeper(name);
            config.image = Some(corten_cri_api::v1::ImageSpec {
                image: image_id.clone(),
                user_specified_image: user.into(),
                ..Default::default()
            });
            let id = crictl_tests::cri::run_container(&mut client, &pod, config)
                .await
                .expect("create and start");
            let status = client
                .container_status(corten_cri_api::v1::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await
                .expect("status")
                .into_inner()
                .status
                .expect("a status");
            let listed = client
                .list_containers(corten_cri_api::v1::ListContainersRequest {
                    filter: Some(corten_cri_api::v1::ContainerFilter {
                        id,
                        ..Default::default()
                    }),
                })
                .await
                .expect("list")
                .into_inner()
                .containers;
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].image, status.image);
            assert!(
                status
                    .image_ref
                    .starts_with("docker.io/library/busybox@sha256:"),
                "{}",
                status.image_ref
            );
            shown.push(status.image.map(|i| i.image).unwrap_or_default());
        }
        shown
    });
    assert_eq!(
        shown,
        ["busybox:latest", "docker.io/library/busybox:latest"]
    );
}
