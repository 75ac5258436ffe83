//! Issue 4, as root: containers created from a busybox image run isolated
//! under a shim, and their ends are reported correctly.

mod common;

use std::time::Duration;

use common::Env;
use corten_runtime::shim::protocol::files;
use corten_runtime::shim::Status;

#[tokio::test]
async fn pid_1_is_the_command_and_the_container_sees_only_itself() {
    let env = Env::new();
    env.create(
        "iso",
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; ls /; ps -o pid | wc -l; cat /proc/1/cmdline | tr '\\0' ' '",
        ],
        |c| {
            c.hostname = Some("box".into());
        },
    )
    .await;
    env.runtime.start("iso").await.expect("start");
    let state = env.runtime.wait("iso").await.expect("wait");
    let exit = state.exit.expect("exited");
    assert_eq!(exit.code, 0, "{:?}", env.log_lines("iso"));
    let lines = env.log_lines("iso");
    assert_eq!(lines[0], "pid=1", "{lines:?}");
    assert_eq!(lines[1], "box", "{lines:?}");
    let ls: Vec<&str> = lines
        .iter()
        .skip(2)
        .take_while(|l| !l.trim().chars().all(|c| c.is_ascii_digit()))
        .map(String::as_str)
        .collect();
    assert!(ls.contains(&"bin") && ls.contains(&"etc"), "{lines:?}");
    assert!(
        !ls.contains(&"boot") && !ls.contains(&"work"),
        "host files visible: {lines:?}"
    );
    env.runtime.delete("iso").await.expect("delete");
}

#[tokio::test]
async fn exit_codes_and_signals_round_trip() {
    let env = Env::new();
    env.create("code", &["sh", "-c", "exit 3"], |_| {}).await;
    env.runtime.start("code").await.expect("start");
    let exit = env
        .runtime
        .wait("code")
        .await
        .expect("wait")
        .exit
        .expect("exit");
    assert_eq!((exit.code, exit.signal), (3, None));

    env.create("sig", &["sleep", "1000"], |_| {}).await;
    env.runtime.start("sig").await.expect("start");
    assert_eq!(
        env.runtime.state("sig").await.expect("state").status,
        Status::Running
    );
    env.runtime.kill("sig", 9, false).await.expect("kill");
    let exit = env
        .runtime
        .wait("sig")
        .await
        .expect("wait")
        .exit
        .expect("exit");
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    for id in ["code", "sig"] {
        env.runtime.delete(id).await.expect("delete");
    }
}

#[tokio::test]
async fn memory_limit_kills_with_oom() {
    let env = Env::new();
    env.create(
        "oom",
        &[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo survived",
        ],
        |c| {
            c.resources.memory_limit_bytes = Some(32 << 20);
        },
    )
    .await;
    env.runtime.start("oom").await.expect("start");
    let exit = env
        .runtime
        .wait("oom")
        .await
        .expect("wait")
        .exit
        .expect("exit");
    assert!(exit.oom_killed, "{exit:?} {:?}", env.log_lines("oom"));
    assert!(!env.log_lines("oom").iter().any(|l| l == "survived"));
    env.runtime.delete("oom").await.expect("delete");
}

#[tokio::test]
async fn pids_limit_stops_a_fork_bomb() {
    let env = Env::new();
    env.create(
        "pids",
        &[
            "sh",
            "-c",
            "n=0; for i in $(seq 1 40); do sleep 3 & n=$((n+1)); done; echo started; wait",
        ],
        |c| {
            c.resources.pids_limit = Some(10);
        },
    )
    .await;
    env.runtime.start("pids").await.expect("start");
    let _ = env.runtime.wait("pids").await.expect("wait");
    let log = env.log_lines("pids").join("\n");
    assert!(
        log.contains("can't fork") || log.contains("Resource temporarily unavailable"),
        "{log}"
    );
    env.runtime.delete("pids").await.expect("delete");
}

#[tokio::test]
async fn runtime_default_seccomp_denies_unshare_with_eperm() {
    let env = Env::new();
    env.create("sec", &["sh", "-c", "unshare -u true; echo rc=$?"], |c| {
        c.security.seccomp = corten_runtime::spec::SeccompProfile::RuntimeDefault;
    })
    .await;
    env.runtime.start("sec").await.expect("start");
    env.runtime.wait("sec").await.expect("wait");
    let log = env.log_lines("sec").join("\n");
    assert!(log.contains("Operation not permitted"), "{log}");
    assert!(log.contains("rc=1"), "{log}");
    env.runtime.delete("sec").await.expect("delete");
}

#[tokio::test]
async fn readonly_rootfs_and_image_user() {
    let env = Env::new();
    env.create(
        "ro",
        &["sh", "-c", "touch /x && echo wrote; id -u; id -g"],
        |c| {
            c.security.readonly_rootfs = true;
            c.security.run_as_username = Some("tester".into());
        },
    )
    .await;
    env.runtime.start("ro").await.expect("start");
    env.runtime.wait("ro").await.expect("wait");
    let log = env.log_lines("ro");
    assert!(!log.iter().any(|l| l == "wrote"), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("Read-only file system")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l == "1000"), "{log:?}");
    env.runtime.delete("ro").await.expect("delete");
}

#[tokio::test]
async fn container_outlives_its_daemon_side_and_its_exit_is_read_back() {
    let env = Env::new();
    // pid 1 of a pid namespace ignores signals it has no handler for: trap it.
    env.create(
        "long",
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 42' TERM; while true; do echo tick; sleep 0.1; done",
        ],
        |_| {},
    )
    .await;
    env.runtime.start("long").await.expect("start");
    // A new runtime handle knows nothing but the files: as a restarted daemon.
    let again = corten_runtime::container::ContainerRuntime::new(
        &env.tmp.path().join("state"),
        &env.tmp.path().join("root"),
        std::path::Path::new(env!("CARGO_BIN_EXE_corten-shim")),
    );
    let before = env.log_lines("long").len();
    common::wait::until_async("the log to grow", Duration::from_secs(30), || {
        env.log_lines("long").len() > before
    })
    .await;
    assert_eq!(
        again.state("long").await.expect("state").status,
        Status::Running
    );
    again.kill("long", 15, false).await.expect("kill");
    let exit = again.wait("long").await.expect("wait").exit.expect("exit");
    assert_eq!((exit.code, exit.signal), (42, None));
    assert_eq!(
        env.log_lines("long").last().map(String::as_str),
        Some("bye")
    );
    // Once the shim is gone (it removes its socket last), the exit file
    // answers.
    let socket = again.bundle("long").join(files::SOCKET);
    common::wait::until_async("the shim to go", Duration::from_secs(30), || {
        !socket.exists()
    })
    .await;
    let state = again.state("long").await.expect("state from files");
    assert_eq!(state.exit.map(|e| e.code), Some(42));
    again.delete("long").await.expect("delete");
}
