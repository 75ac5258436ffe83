//! Issue 4, runtime-handler seam, as root: the same scenarios run under the
//! built-in core and under runc and crun (driven by the shim) on the same kind of
//! bundle, and must end the same way.

mod common;

use std::path::PathBuf;

use common::Env;
use corten_runtime::shim::{ExitStatus, Status};
use corten_runtime::spec::ContainerConfig;

/// Debian's runc and crun (`apt-get install runc crun`; crictl-tests/run.sh
/// installs them).
const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

/// One env per backend: built-in first, then runc and crun.
fn envs() -> Vec<(&'static str, Env)> {
    common::require_installed(RUNC, "runc");
    common::require_installed(CRUN, "crun");
    vec![
        ("builtin", Env::new()),
        ("runc", Env::with_oci_runtime(Some(PathBuf::from(RUNC)))),
        ("crun", Env::with_oci_runtime(Some(PathBuf::from(CRUN)))),
    ]
}

/// Creates, starts and waits for `args`; returns how it ended and its log
/// lines (stream, tag, text), then deletes it.
async fn run(
    env: &Env,
    id: &str,
    args: &[&str],
    edit: impl FnOnce(&mut ContainerConfig),
) -> (ExitStatus, Vec<String>) {
    env.create(id, args, edit).await;
    env.runtime.start(id).await.expect("start");
    let exit = env
        .runtime
        .wait(id)
        .await
        .expect("wait")
        .exit
        .expect("exit");
    let log = full_log_lines(env, id);
    env.runtime.delete(id).await.expect("delete");
    assert_gone(env, id);
    (exit, log)
}

/// The log without timestamps: `<stream> <F|P> <text>`.
fn full_log_lines(env: &Env, id: &str) -> Vec<String> {
    std::fs::read_to_string(env.log_path(id))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()))
        .collect()
}

/// Nothing is left: bundle (with runc's state), writable layer, cgroup.
fn assert_gone(env: &Env, id: &str) {
    assert!(!env.runtime.bundle(id).exists(), "bundle of {id} left");
    assert!(
        !env.runtime.writable_layer(id).exists(),
        "layer of {id} left"
    );
    let cgroup = format!("corten-test/{}-{id}", std::process::id());
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
    {
        let dir = controller.path().join(&cgroup);
        assert!(!dir.exists(), "cgroup {} left", dir.display());
    }
}

#[tokio::test]
async fn pid_1_hostname_and_root_match() {
    let mut outcomes = Vec::new();
    for (name, env) in envs() {
        let id = format!("iso-{name}");
        let (exit, log) = run(
            &env,
            &id,
            &[
                "sh",
                "-c",
                "echo pid=$$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /",
            ],
            |c| c.hostname = Some("box".into()),
        )
        .await;
        assert_eq!(exit.code, 0, "{name}: {log:?}");
        assert_eq!(log[0], "stdout F pid=1", "{name}: {log:?}");
        assert_eq!(log[1], "stdout F box", "{name}: {log:?}");
        assert!(
            log[2].starts_with("stdout F sh -c echo pid"),
            "{name}: {log:?}"
        );
        assert!(log.iter().any(|l| l == "stdout F bin"), "{name}: {log:?}");
        assert!(!log.iter().any(|l| l == "stdout F boot"), "{name}: {log:?}");
        outcomes.push(log);
    }
    assert_eq!(outcomes[0], outcomes[1], "built-in vs runc");
}

#[tokio::test]
async fn exit_code_and_sigkill_match() {
    for (name, env) in envs() {
        let (exit, _) = run(
            &env,
            &format!("code-{name}"),
            &["sh", "-c", "exit 3"],
            |_| {},
        )
        .await;
        assert_eq!(
            (exit.code, exit.signal, exit.oom_killed),
            (3, None, false),
            "{name}"
        );

        let id = format!("sig-{name}");
        env.create(&id, &["sleep", "1000"], |_| {}).await;
        assert_eq!(
            env.runtime.state(&id).await.expect("state").status,
            Status::Created,
            "{name}"
        );
        env.runtime.start(&id).await.expect("start");
        assert_eq!(
            env.runtime.state(&id).await.expect("state").status,
            Status::Running,
            "{name}"
        );
        env.runtime.kill(&id, 9, false).await.expect("kill");
        let exit = env
            .runtime
            .wait(&id)
            .await
            .expect("wait")
            .exit
            .expect("exit");
        assert_eq!((exit.code, exit.signal), (137, Some(9)), "{name}");
        env.runtime.delete(&id).await.expect("delete");
        assert_gone(&env, &id);
    }
}

#[tokio::test]
async fn delete_of_a_running_container_kills_it_and_leaves_nothing() {
    for (name, env) in envs() {
        let id = format!("del-{name}");
        env.create(&id, &["sleep", "1000"], |_| {}).await;
        env.runtime.start(&id).await.expect("start");
        let pid = env.runtime.state(&id).await.expect("state").pid;
        assert!(pid > 0, "{name}: no init pid");
        env.runtime.delete(&id).await.expect("delete");
        assert_gone(&env, &id);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name}: init {pid} still there"
        );
    }
}

#[tokio::test]
async fn memory_limit_oom_is_reported_by_both() {
    for (name, env) in envs() {
        let (exit, log) = run(
            &env,
            &format!("oom-{name}"),
            &[
                "sh",
                "-c",
                "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo survived",
            ],
            |c| c.resources.memory_limit_bytes = Some(32 << 20),
        )
        .await;
        assert!(exit.oom_killed, "{name}: {exit:?} {log:?}");
        assert!(
            !log.iter().any(|l| l.ends_with("survived")),
            "{name}: {log:?}"
        );
    }
}

#[tokio::test]
async fn readonly_rootfs_refuses_writes_in_both() {
    let mut outcomes = Vec::new();
    for (name, env) in envs() {
        let (exit, log) = run(
            &env,
            &format!("ro-{name}"),
            &[
                "sh",
                "-c",
                "touch /x && echo wrote; touch /tmp/y && echo tmp",
            ],
            |c| c.security.readonly_rootfs = true,
        )
        .await;
        assert!(!log.iter().any(|l| l.ends_with("wrote")), "{name}: {log:?}");
        assert!(
            log.iter().any(|l| l.contains("Read-only file system")),
            "{name}: {log:?}"
        );
        outcomes.push((exit.code, log));
    }
    assert_eq!(outcomes[0], outcomes[1], "built-in vs runc");
}

#[tokio::test]
async fn log_content_is_identical() {
    let script = "echo out1; echo err1 >&2; printf 'no newline'; sleep 0.1; echo >&2 err2; \
                  printf 'x%.0s' $(seq 1 20000); echo; exit 0";
    let mut outcomes = Vec::new();
    for (name, env) in envs() {
        let (exit, log) = run(&env, &format!("log-{name}"), &["sh", "-c", script], |_| {}).await;
        assert_eq!(exit.code, 0, "{name}");
        // Streams are separate pipes: compare each stream in its order.
        let stdout: Vec<&String> = log.iter().filter(|l| l.starts_with("stdout")).collect();
        let stderr: Vec<&String> = log.iter().filter(|l| l.starts_with("stderr")).collect();
        assert_eq!(stderr.len(), 2, "{name}: {log:?}");
        outcomes.push((
            stdout.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            stderr.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(outcomes[0], outcomes[1], "built-in vs runc");
}

/// Whoever hears of the exit finds the whole output in the log: the shim
/// drains the pipes before it publishes the exit (kubelet reads the logs of
/// a container that printed and exited the moment it sees the exit).
#[tokio::test]
async fn the_log_is_complete_when_the_exit_is_heard() {
    // More than a pipe holds, on both streams, written at the very end.
    let script = "seq 1 20000; seq 1 20000 >&2";
    for (name, env) in envs() {
        for round in 0..5 {
            let (exit, log) = run(
                &env,
                &format!("end-{name}-{round}"),
                &["sh", "-c", script],
                |_| {},
            )
            .await;
            assert_eq!(exit.code, 0, "{name}");
            let count = |stream: &str| log.iter().filter(|l| l.starts_with(stream)).count();
            assert_eq!(
                (count("stdout"), count("stderr")),
                (20000, 20000),
                "{name}, round {round}: lines in the log when the exit was heard"
            );
            let last = "stdout F 20000".to_string();
            assert!(log.contains(&last), "{name}, round {round}");
        }
    }
}

#[tokio::test]
async fn a_tty_container_gets_its_terminal_from_each() {
    for (name, env) in envs() {
        let script = "test -t 0 && test -t 1 && echo \"tty on $(tty)\"";
        let (exit, log) = run(&env, "tty", &["sh", "-c", script], |c| c.tty = true).await;
        assert_eq!(exit.code, 0, "{name}: {log:?}");
        assert!(
            log.iter().any(|l| l.contains("tty on /dev/")),
            "{name}: {log:?}"
        );
    }
}
