//! Issue 4, as root: a container's usage comes from its cgroup and its
//! writable layer.

mod common;

use std::time::Duration;

use common::Env;

#[tokio::test]
async fn stats_report_cgroup_counters_and_the_writable_layer() {
    let env = Env::new();
    env.create(
        "busy",
        &[
            "sh",
            "-c",
            "head -c 2097152 /dev/urandom > /tmp/blob; echo ready; sleep 1000",
        ],
        |c| c.resources.memory_limit_bytes = Some(64 << 20),
    )
    .await;
    env.runtime.start("busy").await.expect("start");
    common::wait::until_async(
        "the container to get ready",
        Duration::from_secs(30),
        || env.log_lines("busy").iter().any(|l| l == "ready"),
    )
    .await;
    let stats = env.runtime.stats("busy").expect("stats");
    let cg = stats.cgroup.expect("cgroup stats while running");
    assert!(cg.cpu_usage_ns > 0, "{cg:?}");
    assert!(cg.memory_usage_bytes > 0, "{cg:?}");
    assert_eq!(cg.memory_limit_bytes, Some(64 << 20), "{cg:?}");
    assert!(cg.pids_current >= 1, "{cg:?}");
    assert!(
        stats.writable_layer.bytes >= 2 << 20,
        "the 2 MiB file is in the writable layer: {:?}",
        stats.writable_layer
    );

    env.runtime.kill("busy", 9, false).await.expect("kill");
    env.runtime.wait("busy").await.expect("wait");
    env.runtime.delete("busy").await.expect("delete");
    let err = env.runtime.stats("busy").expect_err("deleted");
    assert_eq!(err.kind(), corten_runtime::ErrorKind::NotFound);
}
