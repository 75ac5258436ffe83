//! The pod state machine, step by step and failures included, through the
//! fake plumbing (no root).

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::sandbox::fake_plumbing::{injected, Call, Existing, FakePlumbing, Step};
use crate::sandbox::{Namespace, PidMode, PodState};

struct Env {
    _tmp: tempfile::TempDir,
    state_dir: PathBuf,
    store: Arc<MetaStore>,
    fake: Arc<FakePlumbing>,
    pods: Pods,
}

impl Env {
    async fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("meta.db")).expect("store"));
        let fake = Arc::new(FakePlumbing::default());
        let state_dir = tmp.path().join("state");
        let pods = Pods::open(store.clone(), &state_dir, fake.clone())
            .await
            .expect("open");
        Env {
            _tmp: tmp,
            state_dir,
            store,
            fake,
            pods,
        }
    }

    /// Opens the pods again over the same store and plumbing (a restart).
    async fn reopen(&mut self) {
        self.pods = Pods::open(self.store.clone(), &self.state_dir, self.fake.clone())
            .await
            .expect("reopen");
    }

    fn records(&self) -> Vec<Pod> {
        let all: Vec<(String, Pod)> = self.store.load_all(Table::Pods).expect("load");
        all.into_iter().map(|(_, p)| p).collect()
    }

    fn record(&self, id: &str) -> Pod {
        let found = self.records().into_iter().find(|p| p.id == id);
        found.unwrap_or_else(|| panic!("no record of {id}"))
    }

    fn assert_nothing_left(&self) {
        assert_eq!(self.fake.existing(), Existing::default());
        assert!(
            self.records().is_empty(),
            "records left: {:?}",
            self.records()
        );
        assert!(self.pods.list().is_empty());
        let dirs = std::fs::read_dir(self.state_dir.join("pods"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(dirs, 0, "pod directories left");
    }
}

/// A pod with every part: cgroup, shm, net/uts/ipc, a shared pid init, CNI.
fn full() -> PodConfig {
    PodConfig {
        name: "web".into(),
        namespace: "default".into(),
        uid: "u1".into(),
        hostname: "web".into(),
        pid: PidMode::Pod,
        ..PodConfig::default()
    }
}

fn position(calls: &[Call], want: impl Fn(&Call) -> bool) -> usize {
    calls
        .iter()
        .position(want)
        .unwrap_or_else(|| panic!("call not made: {calls:?}"))
}

#[tokio::test]
async fn run_makes_each_part_in_order_with_the_init_in_the_pod_cgroup() {
    let env = Env::new().await;
    let pod = env.pods.run(full()).await.expect("run");
    assert_eq!(pod.state, PodState::Ready);
    assert!(!pod.creating);
    let cgroup = format!("/corten/{}", pod.id);
    let netns = pod.dir.join("net");
    assert_eq!(
        env.fake.calls(),
        vec![
            Call::CreateCgroup(cgroup.clone()),
            Call::MountShm(pod.dir.join("shm")),
            Call::Pin(
                pod.dir.clone(),
                vec![Namespace::Net, Namespace::Uts, Namespace::Ipc]
            ),
            Call::SpawnInit(Some(cgroup.clone())),
            Call::CniAdd {
                pod: pod.id.to_string(),
                netns
            },
            Call::WriteFiles(pod.dir.clone()),
        ]
    );
    assert!(pod.cgroup_created && pod.shm && pod.network_attached);
    assert_eq!(pod.ips.len(), 1);
    assert_eq!(env.record(&pod.id), pod);
    let e = env.fake.existing();
    assert!(e.cgroups.contains(&cgroup) && e.leases.contains(pod.id.as_str()));
}

/// Each step of RunPodSandbox failing in turn: its error comes back,
/// nothing of the pod is left, and the name can be used again.
#[tokio::test]
async fn run_failing_at_any_step_leaves_nothing_and_frees_the_name() {
    for step in [
        Step::CreateCgroup,
        Step::MountShm,
        Step::Pin,
        Step::SpawnInit,
        Step::CniAdd,
        Step::WriteFiles,
    ] {
        let env = Env::new().await;
        env.fake.fail_next(step);
        let e = env.pods.run(full()).await.expect_err("must fail");
        assert_eq!(e.to_string(), injected(step).to_string(), "{step:?}");
        env.assert_nothing_left();
        // The rollback forces CNI DEL even when ADD never ran.
        let calls = env.fake.calls();
        assert!(
            calls.iter().any(|c| matches!(c, Call::CniDel { .. })),
            "{step:?}: {calls:?}"
        );

        env.fake.clear_faults();
        let pod = env.pods.run(full()).await.expect("the name is free again");
        assert_eq!(pod.state, PodState::Ready, "{step:?}");
    }
}

#[tokio::test]
async fn rollback_that_fails_still_removes_what_it_can_and_the_record() {
    let env = Env::new().await;
    env.fake.fail_next(Step::WriteFiles);
    env.fake.fail_next(Step::CniDel);
    env.pods.run(full()).await.expect_err("must fail");
    // The lease is what the failed DEL could not release; the rest is gone.
    let left = env.fake.existing();
    assert_eq!(left.leases.len(), 1);
    assert!(left.cgroups.is_empty() && left.shm.is_empty() && left.pins.is_empty());
    assert!(left.inits.is_empty());
    assert!(env.records().is_empty());
}

#[tokio::test]
async fn a_cgroup_that_exists_is_used_and_left_alone() {
    let env = Env::new().await;
    env.fake.alter(|e| {
        e.cgroups.insert("/kubepods/pod-u1".into());
    });
    let config = PodConfig {
        cgroup_parent: "/kubepods/pod-u1".into(),
        ..full()
    };
    env.fake.fail_next(Step::CniAdd);
    env.pods.run(config).await.expect_err("must fail");
    assert!(!env
        .fake
        .calls()
        .contains(&Call::RemoveCgroup("/kubepods/pod-u1".into())));
    assert!(env.fake.existing().cgroups.contains("/kubepods/pod-u1"));
}

#[tokio::test]
async fn host_pods_make_no_namespaces_and_no_network() {
    let env = Env::new().await;
    let config = PodConfig {
        host_network: true,
        host_ipc: true,
        pid: PidMode::Host,
        ..full()
    };
    let pod = env.pods.run(config).await.expect("run");
    let calls = env.fake.calls();
    assert_eq!(
        calls,
        vec![
            Call::CreateCgroup(format!("/corten/{}", pod.id)),
            Call::WriteFiles(pod.dir.clone()),
        ]
    );
    env.pods.remove(&pod.id).await.expect("remove");
    assert!(!env
        .fake
        .calls()
        .iter()
        .any(|c| matches!(c, Call::CniDel { .. })));
    env.assert_nothing_left();
}

#[tokio::test]
async fn a_sysctl_without_a_pod_namespace_is_refused_after_undoing_the_cgroup_and_shm() {
    let env = Env::new().await;
    let config = PodConfig {
        host_network: true,
        host_ipc: true,
        sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        ..full()
    };
    let e = env.pods.run(config).await.expect_err("refused");
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    env.assert_nothing_left();
}

#[tokio::test]
async fn stop_undoes_the_network_first_and_keeps_the_cgroup() {
    let env = Env::new().await;
    let pod = env.pods.run(full()).await.expect("run");
    env.fake.clear_calls();
    let stopped = env.pods.stop(&pod.id).await.expect("stop");
    let init = pod.init.expect("init").pid;
    assert_eq!(
        env.fake.calls(),
        vec![
            Call::CniDel {
                pod: pod.id.to_string(),
                netns: pod.dir.join("net")
            },
            Call::KillInit(init),
            Call::Unpin(pod.dir.clone()),
            Call::UnmountShm(pod.dir.join("shm")),
        ]
    );
    assert_eq!(stopped.state, PodState::NotReady);
    assert!(!stopped.network_attached && stopped.namespaces.is_empty() && stopped.init.is_none());
    assert_eq!(env.record(&pod.id), stopped);
    let e = env.fake.existing();
    assert_eq!(e.cgroups.len(), 1);
    assert!(e.leases.is_empty() && e.pins.is_empty() && e.shm.is_empty());

    // Again: nothing to do, no DEL (no ADD recorded), success.
    env.fake.clear_calls();
    env.pods.stop(&pod.id).await.expect("stop again");
    assert!(!env
        .fake
        .calls()
        .iter()
        .any(|c| matches!(c, Call::CniDel { .. })));
}

#[tokio::test]
async fn stop_with_cni_del_failing_keeps_the_attachment_for_a_retry() {
    let env = Env::new().await;
    let pod = env.pods.run(full()).await.expect("run");
    env.fake.fail_next(Step::CniDel);
    let e = env.pods.stop(&pod.id).await.expect_err("must fail");
    assert_eq!(e.to_string(), injected(Step::CniDel).to_string());
    let kept = env.pods.get(&pod.id).expect("kept");
    assert_eq!(kept.state, PodState::NotReady);
    assert!(kept.network_attached);
    assert_eq!(env.record(&pod.id), kept);
    // The other steps ran regardless.
    let left = env.fake.existing();
    assert!(left.pins.is_empty() && left.shm.is_empty() && left.inits.is_empty());
    assert!(left.leases.contains(pod.id.as_str()));

    env.fake.clear_calls();
    let stopped = env.pods.stop(&pod.id).await.expect("retry");
    assert!(!stopped.network_attached);
    assert!(env.fake.existing().leases.is_empty());
    let calls = env.fake.calls();
    let del = position(&calls, |c| matches!(c, Call::CniDel { .. }));
    let unpin = position(&calls, |c| matches!(c, Call::Unpin(_)));
    assert!(del < unpin, "{calls:?}");
}

#[tokio::test]
async fn remove_with_a_teardown_step_failing_keeps_the_record_until_a_retry() {
    for step in [
        Step::CniDel,
        Step::Unpin,
        Step::UnmountShm,
        Step::RemoveCgroup,
    ] {
        let env = Env::new().await;
        let pod = env.pods.run(full()).await.expect("run");
        env.fake.fail_next(step);
        let e = env.pods.remove(&pod.id).await.expect_err("must fail");
        assert_eq!(e.to_string(), injected(step).to_string(), "{step:?}");
        let kept = env.pods.get(&pod.id).expect("kept");
        assert_eq!(kept.state, PodState::NotReady, "{step:?}");
        assert_eq!(env.record(&pod.id).id, pod.id, "{step:?}");

        env.pods.remove(&pod.id).await.expect("retry");
        env.assert_nothing_left();
        assert!(matches!(env.pods.get(&pod.id), Err(Error::NotFound { .. })));
        // Removing what is gone is success.
        env.pods.remove(&pod.id).await.expect("remove again");
    }
}

#[tokio::test]
async fn remove_kills_an_unrecorded_init_with_the_cgroup() {
    let env = Env::new().await;
    let pod = env.pods.run(full()).await.expect("run");
    env.pods.remove(&pod.id).await.expect("remove");
    let calls = env.fake.calls();
    let del = position(&calls, |c| matches!(c, Call::CniDel { .. }));
    let unpin = position(&calls, |c| matches!(c, Call::Unpin(_)));
    let rm = position(&calls, |c| matches!(c, Call::RemoveCgroup(_)));
    assert!(del < unpin && unpin < rm, "{calls:?}");
    env.assert_nothing_left();
}

/// What a crash between two steps of RunPodSandbox leaves: a `creating`
/// record with the plan, and parts the record never learned about (the
/// pins, the init), the init born in the pod's cgroup.
fn crashed_pod(env: &Env, id: &str) -> Pod {
    let dir = env.state_dir.join("pods").join(id);
    std::fs::create_dir_all(&dir).expect("pod dir");
    let cgroup = format!("/corten/{id}");
    let pod = Pod {
        id: crate::ids::SandboxId::parse(id).expect("a pod id"),
        config: full(),
        state: PodState::NotReady,
        dir: dir.clone(),
        shm: true,
        cgroup: Some(cgroup.clone()),
        cgroup_created: true,
        network_attached: true,
        creating: true,
        ..Pod::default()
    };
    env.pods.records.persist(&pod).expect("save");
    env.fake.alter(|e| {
        e.cgroups.insert(cgroup.clone());
        e.shm.insert(dir.join("shm"));
        e.pins
            .insert(dir.clone(), vec![Namespace::Net, Namespace::Ipc]);
        e.inits.insert(4242, Some(cgroup));
        e.leases.insert(id.into());
    });
    pod
}

#[tokio::test]
async fn open_undoes_a_pod_whose_creation_was_cut_short() {
    let mut env = Env::new().await;
    let pod = crashed_pod(&env, "c0ffee");
    env.fake.clear_calls();
    env.reopen().await;
    env.assert_nothing_left();
    let calls = env.fake.calls();
    assert!(calls.contains(&Call::CniDel {
        pod: pod.id.to_string(),
        netns: pod.dir.join("net")
    }));
    assert!(calls.contains(&Call::RemoveCgroup(pod.cgroup.clone().expect("cgroup"))));
    // The pod can be made again under its name.
    env.pods.run(full()).await.expect("run");
}

#[tokio::test]
async fn open_tears_down_a_ready_pod_whose_namespaces_are_gone() {
    let mut env = Env::new().await;
    let pod = env.pods.run(full()).await.expect("run");
    let db = PodConfig {
        name: "db".into(),
        ..full()
    };
    let kept = env.pods.run(db).await.expect("run db");
    // The first pod's pins and init are gone (its state dir and record remain).
    let init = pod.init.expect("init").pid;
    env.fake.alter(|e| {
        e.pins.remove(&pod.dir);
        e.inits.remove(&init);
    });
    env.fake.clear_calls();
    env.reopen().await;

    let lost = env.pods.get(&pod.id).expect("still listed");
    assert_eq!(lost.state, PodState::NotReady);
    assert!(!lost.network_attached && lost.init.is_none() && !lost.shm);
    assert_eq!(env.record(&pod.id).state, PodState::NotReady);
    let left = env.fake.existing();
    assert!(!left.leases.contains(pod.id.as_str()) && !left.shm.contains(&pod.dir.join("shm")));
    assert!(left
        .cgroups
        .contains(pod.cgroup.as_deref().expect("cgroup")));
    let calls = env.fake.calls();
    let del = position(
        &calls,
        |c| matches!(c, Call::CniDel { pod: p, .. } if *p == *pod.id),
    );
    let unpin = position(&calls, |c| *c == Call::Unpin(pod.dir.clone()));
    assert!(del < unpin, "{calls:?}");

    // The intact pod is untouched.
    assert_eq!(env.pods.get(&kept.id).expect("db").state, PodState::Ready);
    assert!(!calls
        .iter()
        .any(|c| matches!(c, Call::CniDel { pod: p, .. } if *p == *kept.id)));
}

#[tokio::test]
async fn no_cgroup_hierarchy_means_no_cgroup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&tmp.path().join("meta.db")).expect("store"));
    let fake = Arc::new(FakePlumbing::without_cgroups());
    let pods = Pods::open(store, tmp.path(), fake.clone())
        .await
        .expect("open");
    let pod = pods.run(full()).await.expect("run");
    assert_eq!(pod.cgroup, None);
    let calls = fake.calls();
    assert!(calls.contains(&Call::SpawnInit(None)), "{calls:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::CreateCgroup(_))));
    pods.remove(&pod.id).await.expect("remove");
    assert_eq!(fake.existing(), Existing::default());
}

#[tokio::test]
async fn a_name_in_use_is_refused_and_changes_nothing() {
    let env = Env::new().await;
    env.pods.run(full()).await.expect("run");
    env.fake.clear_calls();
    let e = env.pods.run(full()).await.expect_err("taken");
    assert_eq!(e.kind(), crate::ErrorKind::AlreadyExists);
    assert!(env.fake.calls().is_empty());
}

#[test]
fn names_are_keyed_by_namespace_name_uid_attempt() {
    let a = PodConfig {
        name: "web".into(),
        namespace: "default".into(),
        uid: "u1".into(),
        ..PodConfig::default()
    };
    let mut b = a.clone();
    assert_eq!(name_key(&a), name_key(&b));
    b.attempt = 1;
    assert_ne!(name_key(&a), name_key(&b));
}

fn userns_maps() -> crate::linux::IdMappings {
    let m = vec![crate::linux::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    }];
    crate::linux::IdMappings {
        uids: m.clone(),
        gids: m,
    }
}

#[tokio::test]
async fn a_user_namespace_is_pinned_first_and_given_to_containers() {
    let env = Env::new().await;
    let config = PodConfig {
        userns: Some(userns_maps()),
        ..full()
    };
    let pod = env.pods.run(config).await.expect("run");
    assert!(env.fake.calls().contains(&Call::Pin(
        pod.dir.clone(),
        vec![
            Namespace::User,
            Namespace::Net,
            Namespace::Uts,
            Namespace::Ipc
        ]
    )));
    let user = pod.context().user.expect("the pod's user namespace");
    assert_eq!(user.path, pod.dir.join("user"));
    assert_eq!(user.mappings, userns_maps());
    // Without one, containers stay in the host's.
    let other = env.pods.run(PodConfig {
        name: "plain".into(),
        ..full()
    });
    assert_eq!(other.await.expect("run").context().user, None);
}

#[tokio::test]
async fn a_user_namespace_with_host_namespaces_or_bad_maps_is_refused_up_front() {
    let env = Env::new().await;
    let mut bad = userns_maps();
    bad.gids.clear();
    let cases = [
        PodConfig {
            host_network: true,
            userns: Some(userns_maps()),
            ..full()
        },
        PodConfig {
            host_ipc: true,
            userns: Some(userns_maps()),
            ..full()
        },
        PodConfig {
            pid: PidMode::Host,
            userns: Some(userns_maps()),
            ..full()
        },
        PodConfig {
            userns: Some(bad),
            ..full()
        },
    ];
    for config in cases {
        let e = env.pods.run(config).await.expect_err("refused");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
    }
    assert!(env.fake.calls().is_empty(), "{:?}", env.fake.calls());
    env.assert_nothing_left();
}
