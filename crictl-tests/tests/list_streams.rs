//! The `Stream*` list RPCs of CRI v0.36 against a real cortend over its
//! socket: each answers what its `List*` RPC answers, in pages (none for
//! an empty list); and a node of 10,000 containers, whose ListContainers
//! answer is over kubelet's 16 MiB limit, streams them all in pages under
//! it, filters honoured.
//!
//! 10,000 real containers would be 10,000 shims (CreateContainer starts
//! one per container, which stays until the container is removed). The
//! node is made instead from one real pod and one real container, stopped:
//! with the daemon down, their records (the daemon's own, read from its
//! metadata store) and the container's bundle files are copied under new
//! ids, names and labels; the daemon's recovery at start keeps exited
//! containers and stopped pods as they are, so the daemon then serves
//! 10,000 containers it cannot tell from ones it made and stopped itself.

mod container_env;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use container_env::Env;
use corten_cri_api::v1 as cri;
use corten_cri_api::v1::image_service_client::ImageServiceClient;
use corten_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corten_runtime::container::{ContainerRecord, ContainerState};
use corten_runtime::sandbox::{Pod, PodState};
use corten_runtime::store::{Change, MetaStore, Table};
use corten_runtime::{ContainerId, Layout, SandboxId};
use crictl_tests::cri::{block_on, channel};
use crictl_tests::Daemon;
use prost::Message as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tonic::transport::Channel;
use tonic::Streaming;

/// kubelet's limit on a CRI message it receives.
const KUBELET_LIMIT: usize = 16 << 20;
/// The size cortend cuts pages to (`corten_cri::paging::PAGE_BYTES`).
const PAGE_BYTES: usize = 1 << 20;
const PODS: usize = 1_000;
const PER_POD: usize = 10;
const CONTAINERS: usize = PODS * PER_POD;
/// Containers carry a `shard` label of 0..SHARDS.
const SHARDS: usize = 10;
/// The annotation each container carries (kubelet's carry its hash,
/// ports, termination settings and whatever the pod spec adds).
const NOTE_BYTES: usize = 2 << 10;

type Runtime = RuntimeServiceClient<Channel>;

/// A client as kubelet has it: 16 MiB at most per message received.
async fn kubelet_client(socket: &Path) -> Runtime {
    RuntimeServiceClient::new(channel(socket).await.expect("connect"))
        .max_decoding_message_size(KUBELET_LIMIT)
}

/// A client with no limit on what it receives.
async fn unlimited_client(socket: &Path) -> Runtime {
    RuntimeServiceClient::new(channel(socket).await.expect("connect"))
        .max_decoding_message_size(usize::MAX)
}

/// Every message of a server stream up to its end.
async fn drain<T: prost::Message>(mut s: Streaming<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(page) = s.message().await.expect("a page, or the end") {
        out.push(page);
    }
    out
}

/// Every page is a message kubelet takes.
fn assert_under_limit<T: prost::Message>(pages: &[T]) {
    for (i, page) in pages.iter().enumerate() {
        let len = page.encoded_len();
        assert!(len <= KUBELET_LIMIT, "page {i} is {len} bytes");
    }
}

fn hex_id(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

fn pod_filter(id: &str) -> cri::ContainerFilter {
    cri::ContainerFilter {
        pod_sandbox_id: id.into(),
        ..Default::default()
    }
}

fn label_filter(key: &str, value: &str) -> cri::ContainerFilter {
    cri::ContainerFilter {
        label_selector: [(key.to_string(), value.to_string())].into(),
        ..Default::default()
    }
}

fn state_filter(state: cri::ContainerState) -> cri::ContainerFilter {
    cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: state as i32,
        }),
        ..Default::default()
    }
}

/// The containers StreamContainers gives for `filter`, each page non-empty
/// and under the limit; the ids, checked unique; and the pages' count.
async fn stream_containers(
    c: &mut Runtime,
    filter: Option<cri::ContainerFilter>,
) -> (BTreeSet<String>, usize) {
    let pages = drain(
        c.stream_containers(cri::StreamContainersRequest { filter })
            .await
            .expect("StreamContainers")
            .into_inner(),
    )
    .await;
    assert_under_limit(&pages);
    let mut ids = BTreeSet::new();
    for page in &pages {
        assert!(!page.containers.is_empty(), "an empty page");
        for ctr in &page.containers {
            assert!(ids.insert(ctr.id.clone()), "{} twice", ctr.id);
        }
    }
    (ids, pages.len())
}

/// The encoded size of each page of StreamContainers with no filter.
async fn page_sizes(c: &mut Runtime) -> Vec<usize> {
    let pages = drain(
        c.stream_containers(cri::StreamContainersRequest { filter: None })
            .await
            .expect("StreamContainers")
            .into_inner(),
    )
    .await;
    pages.iter().map(|p| p.encoded_len()).collect()
}

/// What was copied into the store.
struct Seeded {
    pods: Vec<String>,
    /// By pod, in the order made.
    containers: BTreeMap<String, Vec<String>>,
    /// By shard label.
    shards: BTreeMap<String, BTreeSet<String>>,
}

impl Seeded {
    fn all_containers(&self) -> BTreeSet<String> {
        self.containers.values().flatten().cloned().collect()
    }
}

/// With the daemon down: copies the stopped pod `pod_id` into [`PODS`]
/// pods and its exited container `ctr_id` into [`PER_POD`] containers of
/// each (records and bundle files), under new ids, names and labels.
fn seed(d: &Daemon, pod_id: &str, ctr_id: &str) -> Seeded {
    let layout = Layout::new(&d.root_dir(), &d.state_dir());
    let store = MetaStore::open(&layout.meta_db()).expect("the stopped daemon's store opens");
    let pods: Vec<(String, Pod)> = store.load_all(Table::Pods).expect("pod records");
    let (_, pod) = pods
        .into_iter()
        .find(|(id, _)| id == pod_id)
        .expect("the template pod's record");
    assert_eq!(pod.state, PodState::NotReady, "the template pod is stopped");
    let ctrs: Vec<(String, ContainerRecord)> = store
        .load_all(Table::Containers)
        .expect("container records");
    let (_, ctr) = ctrs
        .into_iter()
        .find(|(id, _)| id == ctr_id)
        .expect("the template container's record");
    assert_eq!(ctr.state, ContainerState::Exited, "{ctr:?}");
    // The bundle's files (the spec, the rootfs description, the exit
    // status, the shim's log), not its sockets.
    let bundle = layout.bundles().join(ctr_id);
    let files: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&bundle)
        .expect("the template's bundle")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name(), std::fs::read(e.path()).expect("read")))
        .collect();
    assert!(!files.is_empty(), "nothing in {}", bundle.display());

    let mut seeded = Seeded {
        pods: Vec::new(),
        containers: BTreeMap::new(),
        shards: BTreeMap::new(),
    };
    let (mut pod_changes, mut ctr_changes) = (Vec::new(), Vec::new());
    for p in 0..PODS {
        let id = hex_id(&format!("seeded pod {p}"));
        let mut new_pod = pod.clone();
        new_pod.id = SandboxId::parse(&id).expect("a pod id");
        new_pod.config.name = format!("seeded-{p}");
        new_pod.config.uid = format!("uid-seeded-{p}");
        new_pod.config.labels.insert("seeded".into(), "yes".into());
        new_pod.dir = layout.pods().join(&id);
        new_pod.created_at = pod.created_at + p as i64;
        pod_changes.push(store.encode(&id, &new_pod).expect("encode"));
        seeded.pods.push(id.clone());
        let mut in_pod = Vec::new();
        for k in 0..PER_POD {
            let i = p * PER_POD + k;
            let cid = hex_id(&format!("seeded container {i}"));
            let mut c = ctr.clone();
            c.id = ContainerId::parse(&cid).expect("a container id");
            c.pod_id = new_pod.id.clone();
            c.pod.pod_id = new_pod.id.clone();
            c.pod.name = new_pod.config.name.clone();
            c.pod.uid = new_pod.config.uid.clone();
            c.name = format!("c{k}");
            c.created_at_ns = ctr.created_at_ns + i as i64;
            let shard = (i % SHARDS).to_string();
            c.labels.insert("shard".into(), shard.clone());
            // Different on every container, as real ones are.
            let note = format!("{i:08}").repeat(NOTE_BYTES / 8);
            c.annotations.insert("seeded/note".into(), note.clone());
            c.config.annotations.insert("seeded/note".into(), note);
            let dir = layout.bundles().join(&cid);
            std::fs::create_dir(&dir).expect("bundle dir");
            for (name, bytes) in &files {
                std::fs::write(dir.join(name), bytes).expect("bundle file");
            }
            let layer = layout.writable_layers().join(&cid);
            for sub in ["upper", "work"] {
                std::fs::create_dir_all(layer.join(sub)).expect("writable layer");
            }
            ctr_changes.push(store.encode(&cid, &c).expect("encode"));
            seeded.shards.entry(shard).or_default().insert(cid.clone());
            in_pod.push(cid);
        }
        seeded.containers.insert(id, in_pod);
    }
    store.apply(Table::Pods, pod_changes).expect("pods stored");
    store
        .apply(Table::Containers, ctr_changes)
        .expect("containers stored");
    seeded
}

/// With the daemon down: takes what [`seed`] made away again (removing
/// 10,000 containers one RPC at a time is not what is under test).
fn unseed(d: &Daemon, seeded: &Seeded) {
    let layout = Layout::new(&d.root_dir(), &d.state_dir());
    let t = Instant::now();
    let store = MetaStore::open(&layout.meta_db()).expect("store");
    let ctrs: Vec<Change> = seeded
        .all_containers()
        .into_iter()
        .map(Change::Delete)
        .collect();
    store
        .apply(Table::Containers, ctrs)
        .expect("containers gone");
    let pods: Vec<Change> = seeded.pods.iter().cloned().map(Change::Delete).collect();
    store.apply(Table::Pods, pods).expect("pods gone");
    eprintln!("records deleted: {:?}", t.elapsed());
    for id in seeded.all_containers() {
        std::fs::remove_dir_all(layout.bundles().join(&id)).expect("bundle");
        std::fs::remove_dir_all(layout.writable_layers().join(&id)).expect("layer");
    }
}

#[test]
fn ten_thousand_containers_stream_under_kubelets_limit_with_filters() {
    let mut env = Env::new();
    // The template: a pod and a container, run and then stopped.
    let tmpl_pod = env.pod("tmpl");
    let mut cfg = env.container_config("tmpl", &["sleep", "3600"]);
    cfg["labels"] = json!({"app": "seeded"});
    cfg["annotations"] = json!({"io.kubernetes.container.hash": "1234abcd"});
    let tmpl_ctr = env.create(&tmpl_pod, "tmpl", &cfg);
    env.d.crictl(&["start", &tmpl_ctr]).ok();
    env.d.crictl(&["stopp", &tmpl_pod]).ok();
    assert_eq!(env.state(&tmpl_ctr), "CONTAINER_EXITED");
    // Live ones, which the seeded copies must not hide.
    let live_pod = env.pod("live");
    let running = env.run(&live_pod, "live", "running", &["sleep", "3600"]);
    let created = env.create(
        &live_pod,
        "live",
        &env.container_config("created", &["sleep", "3600"]),
    );

    assert!(env.d.terminate().success());
    let t = Instant::now();
    let seeded = seed(&env.d, &tmpl_pod, &tmpl_ctr);
    let seeding = t.elapsed();
    let t = Instant::now();
    env.d.resume();
    eprintln!("seeding {CONTAINERS} containers in {PODS} pods: {seeding:?}");

    let socket = env.d.socket().to_path_buf();
    let mut everything = seeded.all_containers();
    assert_eq!(everything.len(), CONTAINERS);
    everything.extend([tmpl_ctr.clone(), running.clone(), created.clone()]);

    block_on(async {
        let mut kubelet = kubelet_client(&socket).await;
        // The socket is bound before the stores are opened and recovered:
        // the first answer comes once they are.
        kubelet
            .version(cri::VersionRequest::default())
            .await
            .expect("Version");
        eprintln!("first answer after the restart: {:?}", t.elapsed());

        // The unary answer is over the limit: the client refuses it.
        let t = Instant::now();
        let err = kubelet
            .list_containers(cri::ListContainersRequest { filter: None })
            .await
            .expect_err("ListContainers of 10,000 is over 16 MiB");
        eprintln!("ListContainers (refused at 16 MiB): {:?}", t.elapsed());
        // tonic says OutOfRange (grpc-go says ResourceExhausted).
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("too large"), "{err:?}");

        // Without a limit it is the same set, and how big it is.
        let mut unlimited = unlimited_client(&socket).await;
        let t = Instant::now();
        let list = unlimited
            .list_containers(cri::ListContainersRequest { filter: None })
            .await
            .expect("ListContainers without a limit")
            .into_inner();
        let list_time = t.elapsed();
        let list_bytes = list.encoded_len();
        assert!(list_bytes > KUBELET_LIMIT, "only {list_bytes} bytes");
        let listed: BTreeSet<String> = list.containers.iter().map(|c| c.id.clone()).collect();
        assert_eq!(list.containers.len(), listed.len());
        assert_eq!(listed, everything);

        let t = Instant::now();
        let (streamed, pages) = stream_containers(&mut kubelet, None).await;
        let stream_time = t.elapsed();
        assert_eq!(streamed, everything);
        assert!(pages > list_bytes / KUBELET_LIMIT, "{pages} pages");
        // Pages as the server cuts them (1 MiB, less than one item under
        // it when full) reach the client whole: its own send limit cuts
        // none (tonic's default is none; 4 MiB is on what it receives).
        let sizes = page_sizes(&mut kubelet).await;
        let full = sizes
            .iter()
            .filter(|&&n| n > PAGE_BYTES - 4 * NOTE_BYTES)
            .count();
        assert!(full >= pages - 1, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= PAGE_BYTES), "{sizes:?}");
        eprintln!(
            "ListContainers: {list_bytes} bytes in {list_time:?}; \
             StreamContainers: {pages} pages in {stream_time:?}"
        );

        // Filters: a pod, a label, each state, and together.
        let t = Instant::now();
        for pod in [
            &seeded.pods[0],
            &seeded.pods[PODS / 2],
            &seeded.pods[PODS - 1],
        ] {
            let (ids, _) = stream_containers(&mut kubelet, Some(pod_filter(pod))).await;
            let want: BTreeSet<String> = seeded.containers[pod].iter().cloned().collect();
            assert_eq!(ids, want);
        }
        let (ids, _) = stream_containers(&mut kubelet, Some(pod_filter(&live_pod))).await;
        assert_eq!(ids, BTreeSet::from([running.clone(), created.clone()]));
        let (ids, _) = stream_containers(&mut kubelet, Some(label_filter("shard", "3"))).await;
        assert_eq!(ids, seeded.shards["3"]);
        let (ids, _) = stream_containers(&mut kubelet, Some(label_filter("app", "seeded"))).await;
        let mut want = seeded.all_containers();
        want.insert(tmpl_ctr.clone());
        assert_eq!(ids, want, "the copies kept the template's labels");
        let pod = &seeded.pods[7];
        let mut both = label_filter("shard", "7");
        both.pod_sandbox_id = pod.clone();
        let (ids, _) = stream_containers(&mut kubelet, Some(both)).await;
        let want: BTreeSet<String> = seeded.containers[pod]
            .iter()
            .filter(|id| seeded.shards["7"].contains(*id))
            .cloned()
            .collect();
        assert_eq!(want.len(), 1);
        assert_eq!(ids, want);
        let (ids, _) = stream_containers(
            &mut kubelet,
            Some(state_filter(cri::ContainerState::ContainerRunning)),
        )
        .await;
        assert_eq!(ids, BTreeSet::from([running.clone()]));
        let (ids, _) = stream_containers(
            &mut kubelet,
            Some(state_filter(cri::ContainerState::ContainerCreated)),
        )
        .await;
        assert_eq!(ids, BTreeSet::from([created.clone()]));
        let (ids, _) = stream_containers(
            &mut kubelet,
            Some(state_filter(cri::ContainerState::ContainerExited)),
        )
        .await;
        let mut want = seeded.all_containers();
        want.insert(tmpl_ctr.clone());
        assert_eq!(ids, want);
        let (ids, pages) =
            stream_containers(&mut kubelet, Some(label_filter("shard", "nonesuch"))).await;
        assert!(ids.is_empty() && pages == 0, "{pages} pages for nothing");

        eprintln!("the filters: {:?}", t.elapsed());

        // The pods, all of them once.
        let pages = drain(
            kubelet
                .stream_pod_sandboxes(cri::StreamPodSandboxesRequest { filter: None })
                .await
                .expect("StreamPodSandboxes")
                .into_inner(),
        )
        .await;
        assert_under_limit(&pages);
        let pods: Vec<String> = pages
            .iter()
            .flat_map(|p| p.pod_sandboxes.iter().map(|s| s.id.clone()))
            .collect();
        let unique: BTreeSet<String> = pods.iter().cloned().collect();
        assert_eq!(pods.len(), unique.len());
        let mut want: BTreeSet<String> = seeded.pods.iter().cloned().collect();
        want.extend([tmpl_pod.clone(), live_pod.clone()]);
        assert_eq!(unique, want);

        // Stats of 10,003 containers, 10,001 of them exited.
        let t = Instant::now();
        let pages = drain(
            kubelet
                .stream_container_stats(cri::StreamContainerStatsRequest { filter: None })
                .await
                .expect("StreamContainerStats")
                .into_inner(),
        )
        .await;
        let stats_time = t.elapsed();
        assert_under_limit(&pages);
        let ids: Vec<String> = pages
            .iter()
            .flat_map(|p| &p.container_stats)
            .filter_map(|s| s.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), unique.len());
        assert_eq!(unique, everything);
        eprintln!(
            "StreamContainerStats of {}: {} pages in {stats_time:?}",
            ids.len(),
            pages.len()
        );

        let t = Instant::now();
        let pages = drain(
            kubelet
                .stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest { filter: None })
                .await
                .expect("StreamPodSandboxStats")
                .into_inner(),
        )
        .await;
        let pod_stats_time = t.elapsed();
        assert_under_limit(&pages);
        let pods: BTreeSet<String> = pages
            .iter()
            .flat_map(|p| &p.pod_sandbox_stats)
            .filter_map(|s| s.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        assert_eq!(pods.len(), PODS + 2);
        eprintln!(
            "StreamPodSandboxStats of {}: {} pages in {pod_stats_time:?}",
            pods.len(),
            pages.len()
        );
    });

    let t = Instant::now();
    assert!(env.d.terminate().success());
    eprintln!("stop: {:?}", t.elapsed());
    unseed(&env.d, &seeded);
    eprintln!("unseeded: {:?}", t.elapsed());
    env.d.resume();
    eprintln!("unseeding and restart: {:?}", t.elapsed());
}

#[test]
fn every_stream_of_an_empty_node_is_no_message_then_the_end() {
    let d = Daemon::start();
    block_on(async {
        let ch = channel(d.socket()).await.expect("connect");
        let mut rt = RuntimeServiceClient::new(ch.clone());
        let mut img = ImageServiceClient::new(ch);
        let s = rt
            .stream_pod_sandboxes(cri::StreamPodSandboxesRequest::default())
            .await
            .expect("StreamPodSandboxes");
        assert!(drain(s.into_inner()).await.is_empty());
        let s = rt
            .stream_containers(cri::StreamContainersRequest::default())
            .await
            .expect("StreamContainers");
        assert!(drain(s.into_inner()).await.is_empty());
        let s = rt
            .stream_container_stats(cri::StreamContainerStatsRequest::default())
            .await
            .expect("StreamContainerStats");
        assert!(drain(s.into_inner()).await.is_empty());
        let s = rt
            .stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest::default())
            .await
            .expect("StreamPodSandboxStats");
        assert!(drain(s.into_inner()).await.is_empty());
        let s = rt
            .stream_pod_sandbox_metrics(cri::StreamPodSandboxMetricsRequest::default())
            .await
            .expect("StreamPodSandboxMetrics");
        assert!(drain(s.into_inner()).await.is_empty());
        let s = img
            .stream_images(cri::StreamImagesRequest::default())
            .await
            .expect("StreamImages");
        assert!(drain(s.into_inner()).await.is_empty());
    });
}

#[test]
fn each_stream_answers_what_its_list_answers() {
    let env = Env::new();
    let mut one = env.pod_config("one");
    one["labels"] = json!({"app": "one"});
    let p1 = env.pod_from("one", &one, &[]).ok().trim().to_string();
    let p2 = env.pod("two");
    let mut web = env.container_config("web", &["sleep", "3600"]);
    web["labels"] = json!({"tier": "front"});
    let web = env.create(&p1, "one", &web);
    env.d.crictl(&["start", &web]).ok();
    let idle = env.create(
        &p2,
        "two",
        &env.container_config("idle", &["sleep", "3600"]),
    );
    let socket = env.d.socket().to_path_buf();

    block_on(async {
        let ch = channel(&socket).await.expect("connect");
        let mut rt = RuntimeServiceClient::new(ch.clone());
        let mut img = ImageServiceClient::new(ch);

        // Pods: the same items, in the same order, for each filter.
        let pod_filters = [
            None,
            Some(cri::PodSandboxFilter {
                id: p1.clone(),
                ..Default::default()
            }),
            Some(cri::PodSandboxFilter {
                label_selector: [("app".to_string(), "one".to_string())].into(),
                ..Default::default()
            }),
            Some(cri::PodSandboxFilter {
                id: "ffffffffffff".into(),
                ..Default::default()
            }),
        ];
        for filter in pod_filters {
            let list = rt
                .list_pod_sandbox(cri::ListPodSandboxRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("ListPodSandbox")
                .into_inner()
                .items;
            let pages = drain(
                rt.stream_pod_sandboxes(cri::StreamPodSandboxesRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("StreamPodSandboxes")
                .into_inner(),
            )
            .await;
            assert!(pages.iter().all(|p| !p.pod_sandboxes.is_empty()));
            let streamed: Vec<_> = pages.into_iter().flat_map(|p| p.pod_sandboxes).collect();
            assert_eq!(streamed, list, "{filter:?}");
        }
        let all = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items;
        assert_eq!(all.len(), 2);

        // Containers.
        let ctr_filters = [
            None,
            Some(pod_filter(&p2)),
            Some(label_filter("tier", "front")),
            Some(state_filter(cri::ContainerState::ContainerRunning)),
            Some(label_filter("tier", "back")),
        ];
        for filter in ctr_filters {
            let list = rt
                .list_containers(cri::ListContainersRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("ListContainers")
                .into_inner()
                .containers;
            let pages = drain(
                rt.stream_containers(cri::StreamContainersRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("StreamContainers")
                .into_inner(),
            )
            .await;
            assert!(pages.iter().all(|p| !p.containers.is_empty()));
            let streamed: Vec<_> = pages.into_iter().flat_map(|p| p.containers).collect();
            assert_eq!(streamed, list, "{filter:?}");
        }

        // Container stats: the counters move between two calls, the
        // containers listed do not.
        let stats_filters = [
            None,
            Some(cri::ContainerStatsFilter {
                pod_sandbox_id: p1.clone(),
                ..Default::default()
            }),
            Some(cri::ContainerStatsFilter {
                label_selector: [("tier".to_string(), "front".to_string())].into(),
                ..Default::default()
            }),
            Some(cri::ContainerStatsFilter {
                id: "ffffffffffff".into(),
                ..Default::default()
            }),
        ];
        let attrs = |s: &cri::ContainerStats| s.attributes.clone().expect("attributes");
        for filter in stats_filters {
            let list: Vec<_> = rt
                .list_container_stats(cri::ListContainerStatsRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("ListContainerStats")
                .into_inner()
                .stats
                .iter()
                .map(attrs)
                .collect();
            let pages = drain(
                rt.stream_container_stats(cri::StreamContainerStatsRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("StreamContainerStats")
                .into_inner(),
            )
            .await;
            assert!(pages.iter().all(|p| !p.container_stats.is_empty()));
            let streamed: Vec<_> = pages
                .iter()
                .flat_map(|p| p.container_stats.iter().map(attrs))
                .collect();
            assert_eq!(streamed, list, "{filter:?}");
        }
        let running = rt
            .stream_container_stats(cri::StreamContainerStatsRequest {
                filter: Some(cri::ContainerStatsFilter {
                    id: web.clone(),
                    ..Default::default()
                }),
            })
            .await
            .expect("StreamContainerStats");
        let pages = drain(running.into_inner()).await;
        let stats = &pages[0].container_stats[0];
        assert!(
            stats.cpu.is_some() && stats.memory.is_some(),
            "a running container has counters: {stats:?}"
        );

        // Pod stats.
        let pod_stats_filters = [
            None,
            Some(cri::PodSandboxStatsFilter {
                id: p2.clone(),
                ..Default::default()
            }),
            Some(cri::PodSandboxStatsFilter {
                label_selector: [("app".to_string(), "one".to_string())].into(),
                ..Default::default()
            }),
            Some(cri::PodSandboxStatsFilter {
                label_selector: [("app".to_string(), "none".to_string())].into(),
                ..Default::default()
            }),
        ];
        // A pod and the containers its stats name.
        let shape = |s: &cri::PodSandboxStats| {
            let containers: Vec<String> = s
                .linux
                .iter()
                .flat_map(|l| &l.containers)
                .filter_map(|c| c.attributes.as_ref().map(|a| a.id.clone()))
                .collect();
            (s.attributes.clone().expect("attributes"), containers)
        };
        for filter in pod_stats_filters {
            let list: Vec<_> = rt
                .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("ListPodSandboxStats")
                .into_inner()
                .stats
                .iter()
                .map(shape)
                .collect();
            let pages = drain(
                rt.stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("StreamPodSandboxStats")
                .into_inner(),
            )
            .await;
            assert!(pages.iter().all(|p| !p.pod_sandbox_stats.is_empty()));
            let streamed: Vec<_> = pages
                .iter()
                .flat_map(|p| p.pod_sandbox_stats.iter().map(shape))
                .collect();
            assert_eq!(streamed, list, "{filter:?}");
        }

        // Pod metrics: the pods and the metric names of each.
        let names = |m: &cri::PodSandboxMetrics| {
            let mut names: Vec<String> = m.metrics.iter().map(|m| m.name.clone()).collect();
            let mut ctrs: Vec<(String, Vec<String>)> = m
                .container_metrics
                .iter()
                .map(|c| {
                    let mut n: Vec<String> = c.metrics.iter().map(|m| m.name.clone()).collect();
                    n.sort();
                    n.dedup();
                    (c.container_id.clone(), n)
                })
                .collect();
            names.sort();
            names.dedup();
            ctrs.sort();
            (m.pod_sandbox_id.clone(), names, ctrs)
        };
        let list: Vec<_> = rt
            .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
            .await
            .expect("ListPodSandboxMetrics")
            .into_inner()
            .pod_metrics
            .iter()
            .map(names)
            .collect();
        let pages = drain(
            rt.stream_pod_sandbox_metrics(cri::StreamPodSandboxMetricsRequest {})
                .await
                .expect("StreamPodSandboxMetrics")
                .into_inner(),
        )
        .await;
        assert!(pages.iter().all(|p| !p.pod_sandbox_metrics.is_empty()));
        let streamed: Vec<_> = pages
            .iter()
            .flat_map(|p| p.pod_sandbox_metrics.iter().map(names))
            .collect();
        assert_eq!(streamed, list);
        assert_eq!(list.len(), 2, "both pods are ready");
        let web_metrics = list
            .iter()
            .find(|(pod, ..)| *pod == p1)
            .map(|(_, _, ctrs)| ctrs.clone())
            .expect("pod one's metrics");
        assert_eq!(
            web_metrics.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            [&web],
            "only running containers"
        );

        // Images.
        let image_filters = [
            None,
            Some(cri::ImageFilter {
                image: Some(cri::ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
            }),
            Some(cri::ImageFilter {
                image: Some(cri::ImageSpec {
                    image: "nonesuch:1".into(),
                    ..Default::default()
                }),
            }),
        ];
        for filter in image_filters {
            let list = img
                .list_images(cri::ListImagesRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("ListImages")
                .into_inner()
                .images;
            let pages = drain(
                img.stream_images(cri::StreamImagesRequest {
                    filter: filter.clone(),
                })
                .await
                .expect("StreamImages")
                .into_inner(),
            )
            .await;
            assert!(pages.iter().all(|p| !p.images.is_empty()));
            let streamed: Vec<_> = pages.into_iter().flat_map(|p| p.images).collect();
            assert_eq!(streamed, list, "{filter:?}");
        }
        let all = img
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .expect("ListImages")
            .into_inner()
            .images;
        assert_eq!(all.len(), 1, "busybox");
    });
    assert_eq!(env.state(&idle), "CONTAINER_CREATED");
}
