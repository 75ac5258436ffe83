//! Absurd but valid requests (issue 12): a container with 100,000
//! environment variables and one with 10,000 mounts are created and run
//! as asked; a creation whose client gives up half-way ends as a recorded
//! container (never a shim and a cgroup without a record), and its pod is
//! removable. Timings are printed, not asserted (benchmarks judge them).

mod container_env;

use std::time::{Duration, Instant};

use container_env::Env;
use corten_cri_api::v1 as k8s;
use crictl_tests::cri;
use serde_json::json;

const VARS: usize = 100_000;
/// As many as exec takes with room to spare.
const FITTING_VARS: usize = 50_000;
const MOUNTS: usize = 10_000;

fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (namespaces, mounts, cgroups)"
    );
}

/// How long the daemon says its last `rpc` took (its log's `done
/// micros=`/`failed ... micros=`), for the figures printed; not asserted.
fn daemon_time(env: &Env, rpc: &str) -> String {
    let log = env.d.log();
    let tag = format!("rpc{{rpc={rpc}}}");
    log.lines()
        .rev()
        .filter(|l| l.contains(&tag))
        .find_map(|l| l.rsplit_once("micros=").map(|(_, m)| m.trim().to_string()))
        .and_then(|m| m.parse::<u64>().ok())
        .map_or_else(
            || "unknown".into(),
            |us| format!("{:.3} s", us as f64 / 1e6),
        )
}

/// A config of `n` variables `BIG_i=v<i>`, and `BIG_7` again at the end.
fn env_config(env: &Env, name: &str, n: usize) -> serde_json::Value {
    let mut c = env.container_config(name, &["sleep", "3600"]);
    let mut vars: Vec<_> = (0..n)
        .map(|i| json!({"key": format!("BIG_{i}"), "value": format!("v{i}")}))
        .collect();
    // A later value of a name replaces the earlier one, in place.
    vars.push(json!({"key": "BIG_7", "value": "last"}));
    c["envs"] = vars.into();
    c
}

#[test]
fn a_hundred_thousand_variables_are_refused_at_create_before_anything_is_made() {
    need_root();
    let env = Env::new();
    let pod = env.pod("bigenv");
    // 100,000 variables take about 2.3 MB with their pointers: more than
    // exec takes under an 8 MB stack limit, so StartContainer would fail
    // with E2BIG. CreateContainer says so instead.
    let c = env_config(&env, "bigenv", VARS);
    let started = Instant::now();
    let out = env.try_create(&pod, "bigenv", &c);
    println!(
        "CreateContainer with {VARS} variables refused in {:?} (crictl round trip), {} in the daemon",
        started.elapsed(),
        daemon_time(&env, "CreateContainer")
    );
    let err = out.fails();
    assert!(
        err.contains("InvalidArgument") && err.contains("variables") && err.contains("exec"),
        "{err}"
    );
    let ps = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(ps.trim().is_empty(), "{ps}");
    let bundles = std::fs::read_dir(env.d.dir().join("state/containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(bundles, 0, "a bundle was made");
}

#[test]
fn fifty_thousand_variables_reach_the_container() {
    need_root();
    let env = Env::new();
    let pod = env.pod("bigenv");
    let c = env_config(&env, "bigenv", FITTING_VARS);
    let started = Instant::now();
    let id = env.create(&pod, "bigenv", &c);
    println!(
        "CreateContainer with {FITTING_VARS} variables: {:?} (crictl round trip), {} in the daemon",
        started.elapsed(),
        daemon_time(&env, "CreateContainer")
    );
    env.d.crictl(&["start", &id]).ok();
    let count = env
        .d
        .crictl(&["exec", "-s", &id, "sh", "-c", "env | grep -c '^BIG_'"])
        .ok();
    assert_eq!(count.trim(), FITTING_VARS.to_string());
    let seven = env
        .d
        .crictl(&["exec", "-s", &id, "sh", "-c", "echo $BIG_7"])
        .ok();
    assert_eq!(seven.trim(), "last");
}

#[test]
fn ten_thousand_mounts_are_all_made() {
    need_root();
    let env = Env::new();
    let pod = env.pod("manymounts");
    let source = env.dir.path().join("shared");
    std::fs::create_dir_all(&source).expect("source");
    std::fs::write(source.join("marker"), "here").expect("marker");
    let mut c = env.container_config("manymounts", &["sleep", "3600"]);
    c["mounts"] = (0..MOUNTS)
        .map(|i| {
            json!({
                "container_path": format!("/m/{i}"),
                "host_path": source.display().to_string(),
                "readonly": true,
            })
        })
        .collect::<Vec<_>>()
        .into();
    let started = Instant::now();
    let id = env.create(&pod, "manymounts", &c);
    println!(
        "CreateContainer with {MOUNTS} mounts: {:?} (crictl round trip), {} in the daemon",
        started.elapsed(),
        daemon_time(&env, "CreateContainer")
    );
    env.d.crictl(&["start", &id]).ok();
    // Every one a mount of its own, read-only, showing the source.
    let out = env
        .d
        .crictl(&[
            "exec",
            "-s",
            &id,
            "sh",
            "-c",
            "ls /m | wc -l; grep -c ' /m/[0-9]* ro,' /proc/self/mountinfo; \
             cat /m/0/marker /m/9999/marker; echo; \
             for i in 0 4321 9999; do touch /m/$i/new 2>/dev/null || echo refused; done",
        ])
        .ok();
    let mounts = MOUNTS.to_string();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [&mounts, &mounts, "herehere", "refused", "refused", "refused"],
        "{out}"
    );
    assert!(!source.join("new").exists(), "a write reached the source");
}

/// The CRI config of a container named `name` with `vars` variables.
fn grpc_config(name: &str, vars: usize) -> k8s::ContainerConfig {
    k8s::ContainerConfig {
        envs: (0..vars)
            .map(|i| k8s::KeyValue {
                key: format!("V_{i}"),
                value: "x".into(),
            })
            .collect(),
        ..cri::sleeper(name)
    }
}

#[test]
fn a_creation_abandoned_by_its_client_is_recorded_and_removable() {
    need_root();
    let env = Env::new();
    let pod = env.pod("abandon");
    let socket = env.d.socket().to_path_buf();
    let bundles_dir = env.d.dir().join("state/containers");
    let bundle_made = || {
        std::fs::read_dir(&bundles_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    // The client goes away once the daemon is half-way: the bundle is on
    // disk, the shim not yet started or not yet answered.
    let abandoned = cri::block_on(async {
        let mut client = cri::runtime(&socket).await.expect("connect");
        let call = client.create_container(k8s::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(grpc_config("abandoned", FITTING_VARS)),
            sandbox_config: None,
        });
        tokio::pin!(call);
        let mut poll = tokio::time::interval(Duration::from_millis(1));
        loop {
            tokio::select! {
                answer = &mut call => return Err(answer),
                _ = poll.tick() => {
                    if bundle_made() {
                        return Ok(());
                    }
                }
            }
        }
    });
    assert!(
        abandoned.is_ok(),
        "the creation ended before its client could give up: {abandoned:?}"
    );

    // The daemon finishes the creation all the same, and records it.
    let mut id = String::new();
    crictl_tests::wait::until(
        "the abandoned creation to be recorded",
        Duration::from_secs(60),
        || {
            let listed = env
                .d
                .crictl(&["ps", "-a", "--name", "abandoned", "-q"])
                .ok();
            id = listed.lines().next().unwrap_or("").to_string();
            !id.is_empty()
        },
    );
    assert_eq!(env.state(&id), "CONTAINER_CREATED");
    // Nothing on disk that has no record.
    let bundles: Vec<String> = std::fs::read_dir(env.d.dir().join("state/containers"))
        .expect("bundles")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bundles, std::slice::from_ref(&id));
    // A retry of the same name is told who holds it.
    let retry = env.try_create(
        &pod,
        "abandon",
        &env.container_config("abandoned", &["true"]),
    );
    let err = retry.fails();
    assert!(err.contains(&id), "{err}");
    env.d.crictl(&["stopp", &pod]).ok();
    env.d.crictl(&["rmp", &pod]).ok();
    let left = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(left.trim().is_empty(), "{left}");
}

/// The CRI config of a container named `name` with `n` read-only bind
/// mounts of `source`.
fn mounts_config(name: &str, source: &std::path::Path, n: usize) -> k8s::ContainerConfig {
    k8s::ContainerConfig {
        mounts: (0..n)
            .map(|i| k8s::Mount {
                container_path: format!("/m/{i}"),
                host_path: source.display().to_string(),
                readonly: true,
                ..Default::default()
            })
            .collect(),
        ..grpc_config(name, FITTING_VARS)
    }
}

#[test]
fn other_callers_are_answered_while_a_huge_creation_runs() {
    need_root();
    let env = Env::new();
    let pod = env.pod("busy");
    let other = env.create(
        &pod,
        "busy",
        &env.container_config("other", &["sleep", "3600"]),
    );
    let source = env.dir.path().join("shared");
    std::fs::create_dir_all(&source).expect("source");
    let socket = env.d.socket().to_path_buf();
    // While a creation of 10,000 mounts and 50,000 variables is under way
    // on one connection, a second one lists, asks statuses and the
    // version. Were the creation's work on the daemon's async workers (or
    // under a lock these readers need), their answers would queue behind
    // it: the check is on order (answers given before the creation ends),
    // not on time.
    let (answered, created) = cri::block_on(async {
        let mut creator = cri::runtime(&socket).await.expect("connect");
        let mut reader = cri::runtime(&socket).await.expect("connect");
        let call = creator.create_container(k8s::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(mounts_config("huge", &source, MOUNTS)),
            sandbox_config: None,
        });
        tokio::pin!(call);
        let mut answered = 0usize;
        loop {
            let read = async {
                reader
                    .list_containers(k8s::ListContainersRequest::default())
                    .await?;
                reader
                    .container_status(k8s::ContainerStatusRequest {
                        container_id: other.clone(),
                        verbose: false,
                    })
                    .await?;
                reader
                    .pod_sandbox_status(k8s::PodSandboxStatusRequest {
                        pod_sandbox_id: pod.clone(),
                        verbose: false,
                    })
                    .await?;
                reader.version(k8s::VersionRequest::default()).await?;
                Ok::<_, tonic::Status>(())
            };
            tokio::select! {
                biased;
                created = &mut call => return (answered, created),
                read = read => {
                    read.expect("a reader's call failed");
                    answered += 1;
                }
            }
        }
    });
    let created = created.expect("the huge creation").into_inner();
    println!(
        "{answered} rounds of ListContainers, ContainerStatus, PodSandboxStatus and Version \
         were answered during a CreateContainer of {MOUNTS} mounts ({} in the daemon)",
        daemon_time(&env, "CreateContainer")
    );
    assert!(
        answered >= 3,
        "only {answered} rounds of readers' calls were answered while the creation ran"
    );
    assert_eq!(env.state(&created.container_id), "CONTAINER_CREATED");
}
