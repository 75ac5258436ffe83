//! Issue 6, end to end: stats from cgroups, lifecycle events streamed by
//! GetContainerEvents, and containers surviving a daemon restart.

mod container_env;

use std::time::Duration;

use container_env::Env;
use corten_cri_api::v1::ContainerEventType;
use crictl_tests::{cri, wait};

fn number(v: &serde_json::Value) -> u64 {
    v["value"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v["value"].as_u64())
        .unwrap_or(0)
}

#[test]
fn stats_numbers_come_from_cgroups_and_move() {
    let env = Env::new();
    let pod = env.pod("stats");
    let id = env.run(
        &pod,
        "stats",
        "busy",
        &[
            "sh",
            "-c",
            "head -c 5000000 /dev/zero > /tmp/fill; while true; do :; done",
        ],
    );
    let sample = || env.d.crictl(&["stats", "-o", "json", &id]).json();
    // Until the file is written and the loop spins: the first sample that
    // shows both.
    let mut first = serde_json::Value::Null;
    let ready = wait::within(Duration::from_secs(30), || {
        first = sample();
        let s = &first["stats"][0];
        number(&s["writableLayer"]["usedBytes"]) >= 5_000_000
            && number(&s["cpu"]["usageCoreNanoSeconds"]) > 0
    });
    assert!(ready, "the container never got busy: {first}");
    // The rate is over the time since the previous sample, short when
    // polled (and the loop may have been descheduled in it): sample until
    // one shows a busy core.
    let c0 = number(&first["stats"][0]["cpu"]["usageCoreNanoSeconds"]);
    let mut second = serde_json::Value::Null;
    let busy = wait::within(Duration::from_secs(30), || {
        second = sample();
        let s = &second["stats"][0];
        number(&s["cpu"]["usageCoreNanoSeconds"]) > c0
            && number(&s["cpu"]["usageNanoCores"]) > 100_000_000
    });
    assert!(
        busy,
        "cpu never moved at a busy core's rate: {first} -> {second}"
    );
    let s1 = &first["stats"][0];
    let s2 = &second["stats"][0];
    assert_eq!(s2["attributes"]["id"], id.as_str(), "{second}");
    let (c1, c2) = (
        number(&s1["cpu"]["usageCoreNanoSeconds"]),
        number(&s2["cpu"]["usageCoreNanoSeconds"]),
    );
    assert!(c2 > c1 && c1 > 0, "cpu moves: {c1} -> {c2}");
    assert!(
        number(&s2["cpu"]["usageNanoCores"]) > 100_000_000,
        "a busy core: {second}"
    );
    assert!(number(&s2["memory"]["workingSetBytes"]) > 0, "{second}");
    // Starting a shell faults pages in.
    assert!(number(&s2["memory"]["pageFaults"]) > 0, "{second}");
    assert!(
        number(&s2["writableLayer"]["usedBytes"]) >= 5_000_000,
        "the written file counts: {second}"
    );
    // The table crictl prints.
    let table = env.d.crictl(&["stats", &id]).ok();
    assert!(table.contains(&id[..13]), "{table}");
    // With an exited container (no cgroup any more) among them.
    let done = env.run(&pod, "stats", "done", &["true"]);
    env.wait_state(&done, "CONTAINER_EXITED", Duration::from_secs(20));
    let all = env.d.crictl(&["stats", "-a", "-o", "json"]).json();
    assert_eq!(all["stats"].as_array().map(Vec::len), Some(2), "{all}");
    let table = env.d.crictl(&["stats", "-a"]).ok();
    assert!(
        table.contains(&done[..13]) && table.contains(&id[..13]),
        "{table}"
    );

    let pods = env.d.crictl(&["statsp", "-o", "json", &pod]).json();
    let p = &pods["stats"][0];
    assert_eq!(p["attributes"]["id"], pod.as_str(), "{pods}");
    assert!(
        number(&p["linux"]["memory"]["workingSetBytes"]) > 0,
        "{pods}"
    );
    assert!(
        number(&p["linux"]["cpu"]["usageCoreNanoSeconds"]) > 0,
        "{pods}"
    );
    assert!(
        number(&p["linux"]["process"]["processCount"]) >= 1,
        "{pods}"
    );
    assert_eq!(
        p["linux"]["containers"][0]["attributes"]["id"],
        id.as_str(),
        "{pods}"
    );
    let listed = env.d.crictl(&["statsp", "-o", "json"]).json();
    assert_eq!(
        listed["stats"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// A pod's network stats are its namespace's interface counters (the
/// Summary API's pod `network`): they grow with traffic.
#[test]
fn pod_network_counters_grow_with_traffic() {
    let env = Env::new();
    let pod = env.pod("talk");
    let id = env.run(&pod, "talk", "box", &["sleep", "3600"]);
    let sample = || {
        let stats = env.d.crictl(&["statsp", "-o", "json", &pod]).json();
        let net = stats["stats"][0]["linux"]["network"].clone();
        assert_eq!(net["defaultInterface"]["name"], "eth0", "{stats}");
        (
            number(&net["defaultInterface"]["rxBytes"]),
            number(&net["defaultInterface"]["txBytes"]),
        )
    };
    let (rx0, tx0) = sample();
    // Ten pings of 1000 bytes to the bridge, the pod's gateway.
    let gateway = format!("{}1", env.net.prefix());
    let out = env.d.crictl(&[
        "exec", &id, "ping", "-c", "10", "-s", "1000", "-W", "5", &gateway,
    ]);
    assert!(out.output.status.success(), "ping: {}", out.stderr());
    let (rx1, tx1) = sample();
    assert!(rx1 >= rx0 + 10_000, "received {rx0} -> {rx1}");
    assert!(tx1 >= tx0 + 10_000, "sent {tx0} -> {tx1}");
}

#[test]
fn container_events_arrive_in_order_with_statuses() {
    let env = Env::new();
    let pod = env.pod("ev");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let socket = env.d.socket().to_path_buf();
    let mut stream = rt.block_on(async {
        let mut client = cri::runtime(&socket).await.expect("connect");
        client
            .get_container_events(corten_cri_api::v1::GetEventsRequest {})
            .await
            .expect("subscribe")
            .into_inner()
    });
    let id = env.run(&pod, "ev", "short", &["sh", "-c", "sleep 0.5; exit 4"]);
    env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(20));
    env.d.crictl(&["rm", &id]).ok();

    let events = rt.block_on(async {
        let mut got = Vec::new();
        while got.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(Ok(Some(e))) => got.push(e),
                other => panic!("event stream ended or stalled after {got:?}: {other:?}"),
            }
        }
        got
    });
    let kinds: Vec<i32> = events.iter().map(|e| e.container_event_type).collect();
    assert_eq!(
        kinds,
        [
            ContainerEventType::ContainerCreatedEvent as i32,
            ContainerEventType::ContainerStartedEvent as i32,
            ContainerEventType::ContainerStoppedEvent as i32,
            ContainerEventType::ContainerDeletedEvent as i32,
        ]
    );
    assert!(events.iter().all(|e| e.container_id == id));
    assert!(events
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));
    let stopped = &events[2];
    let status = stopped.containers_statuses.iter().find(|s| s.id == id);
    assert!(status.is_some_and(|s| s.exit_code == 4), "{stopped:?}");
    let pod_status = stopped
        .pod_sandbox_status
        .as_ref()
        .expect("pod status attached");
    assert_eq!(pod_status.id, pod);
}

#[test]
fn containers_survive_a_daemon_restart_with_their_real_ends() {
    let mut env = Env::new();
    let pod = env.pod("rs");
    let running = env.run(&pod, "rs", "running", &["sleep", "3600"]);
    let done = env.run(&pod, "rs", "done", &["sh", "-c", "exit 3"]);
    env.wait_state(&done, "CONTAINER_EXITED", Duration::from_secs(20));
    let later = env.run(&pod, "rs", "later", &["sh", "-c", "sleep 2; exit 5"]);
    let created = env.create(&pod, "rs", &env.container_config("created", &["true"]));

    // What a creation cut short by a crash leaves: a bundle and a writable
    // layer without a record.
    let half = "f".repeat(64);
    let bundle = env.d.dir().join("state/containers").join(&half);
    let layer = env.d.root_dir().join("containers").join(&half);
    std::fs::create_dir_all(&bundle).expect("bundle");
    std::fs::create_dir_all(layer.join("upper")).expect("layer");

    env.d.restart();
    // Answered only once the daemon has reconciled and serves.
    env.d.crictl(&["version"]).ok();
    assert!(
        !bundle.exists() && !layer.exists(),
        "half-made container cleaned: bundle {} layer {}",
        bundle.exists(),
        layer.exists()
    );
    // Exits while the daemon was away are read from the shim's exit file,
    // or seen by the new watcher.
    let v = env.wait_state(&later, "CONTAINER_EXITED", Duration::from_secs(20));
    assert_eq!(v["status"]["exitCode"], 5, "{v}");
    assert_eq!(env.state(&running), "CONTAINER_RUNNING");
    let out = env
        .d
        .crictl(&["exec", "-s", &running, "echo", "alive"])
        .ok();
    assert_eq!(out.trim(), "alive");
    let v = env.inspect(&done);
    assert_eq!(v["status"]["exitCode"], 3, "{v}");
    assert_eq!(env.state(&created), "CONTAINER_CREATED");
    env.d.crictl(&["start", &created]).ok();
    let v = env.wait_state(&created, "CONTAINER_EXITED", Duration::from_secs(20));
    assert_eq!(v["status"]["exitCode"], 0, "{v}");
    // The running one is still watched: its end is seen at once.
    env.d.crictl(&["stop", "--timeout", "0", &running]).ok();
    let v = env.inspect(&running);
    assert_eq!(v["status"]["exitCode"], 137, "{v}");
}
