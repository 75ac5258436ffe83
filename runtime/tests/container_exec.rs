//! Issue 4, as root: exec into a running container through `corten-shim
//! exec` joins its namespaces, cgroup, user and seccomp, and reports exit
//! codes, output, truncation and timeouts.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use corten_runtime::container::{ExecOutput, ExecRequest};
use corten_runtime::ErrorKind;

fn req(args: &[&str]) -> ExecRequest {
    ExecRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        timeout: Some(Duration::from_secs(20)),
        output_cap: 1 << 20,
        ..ExecRequest::default()
    }
}

async fn exec(env: &Env, id: &str, args: &[&str]) -> ExecOutput {
    env.runtime.exec_sync(id, req(args)).await.expect("exec")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Creates and starts `id` running `sleep 1000`.
async fn running(
    env: &Env,
    id: &str,
    edit: impl FnOnce(&mut corten_runtime::spec::ContainerConfig),
) {
    env.create(id, &["sleep", "1000"], |c| {
        c.hostname = Some("exec-box".into());
        edit(c);
    })
    .await;
    env.runtime.start(id).await.expect("start");
}

#[tokio::test]
async fn exec_sees_the_containers_namespaces_and_round_trips_codes() {
    let env = Env::new();
    running(&env, "ex", |_| {}).await;
    let out = exec(&env, "ex", &["sh", "-c", "echo $$; id -u; hostname; ls /"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let pid: i32 = lines[0].parse().expect("pid");
    assert!(
        pid > 1 && pid < 100,
        "not in the container's pid namespace: {lines:?}"
    );
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2], "exec-box");
    assert!(lines.iter().any(|l| l == "bin") && lines.iter().any(|l| l == "etc"));
    assert!(
        !lines.iter().any(|l| l == "boot"),
        "host root visible: {lines:?}"
    );

    // Same cgroups, capabilities and no_new_privs as the container's init.
    let script = "for f in /proc/self /proc/1; do cat $f/cgroup; grep -E '^(Cap|NoNewPrivs)' $f/status; done";
    let out = exec(&env, "ex", &["sh", "-c", script]).await;
    let all = text(&out.stdout);
    let lines: Vec<&str> = all.lines().collect();
    let (own, init) = lines.split_at(lines.len() / 2);
    assert_eq!(own, init, "{all}");
    assert!(
        all.contains("CapBnd:\t00000000a80425fb"),
        "not the default caps: {all}"
    );

    let out = exec(&env, "ex", &["sh", "-c", "exit 5"]).await;
    assert_eq!((out.exit_code, out.timed_out), (5, false));

    let out = exec(&env, "ex", &["sh", "-c", "echo out; echo err >&2"]).await;
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("out\n".into(), "err\n".into())
    );

    let mut r = req(&["sh", "-c", "echo $FOO; pwd"]);
    r.env = vec!["FOO=bar".into()];
    r.cwd = Some("/etc".into());
    let out = env.runtime.exec_sync("ex", r).await.expect("exec");
    assert_eq!(text(&out.stdout), "bar\n/etc\n");

    let out = exec(&env, "ex", &["no-such-command"]).await;
    assert_eq!(out.exit_code, 127, "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("no-such-command") && err.contains("No such file"),
        "{err}"
    );
    let out = exec(&env, "ex", &["/etc/passwd"]).await;
    assert_eq!(out.exit_code, 126, "{out:?}");

    let mut r = req(&["sh", "-c", "head -c 200000 /dev/zero; echo tail >&2"]);
    r.output_cap = 1000;
    let out = env.runtime.exec_sync("ex", r).await.expect("exec");
    assert_eq!(out.exit_code, 0);
    assert_eq!((out.stdout.len(), out.stdout_written), (1000, 200_000));
    assert!(out.truncated());
    assert_eq!(text(&out.stderr), "tail\n");
    env.runtime.delete("ex").await.expect("delete");
}

#[tokio::test]
async fn exec_timeout_kills_the_command() {
    let env = Env::new();
    running(&env, "to", |_| {}).await;
    let mut r = req(&["sleep", "30"]);
    r.timeout = Some(Duration::from_millis(500));
    let out = env.runtime.exec_sync("to", r).await.expect("exec");
    assert!(out.timed_out, "{out:?}");
    let ps = exec(&env, "to", &["ps", "-o", "pid,args"]).await;
    let ps = text(&ps.stdout);
    assert!(
        !ps.contains("sleep 30"),
        "the timed-out command survived:\n{ps}"
    );
    assert!(ps.contains("sleep 1000"), "{ps}");
    // What a shell forked goes too (the command's process group).
    let mut r = req(&["sh", "-c", "sleep 31; echo never"]);
    r.timeout = Some(Duration::from_millis(300));
    let out = env.runtime.exec_sync("to", r).await.expect("exec");
    assert!(out.timed_out && out.stdout.is_empty(), "{out:?}");
    let ps = text(&exec(&env, "to", &["ps", "-o", "pid,args"]).await.stdout);
    assert!(
        !ps.contains("sleep 31"),
        "a child of the timed-out command survived:\n{ps}"
    );
    env.runtime.delete("to").await.expect("delete");
}

#[tokio::test]
async fn exec_into_a_stopped_container_is_refused() {
    let env = Env::new();
    env.create("gone", &["true"], |_| {}).await;
    let err = env
        .runtime
        .exec_sync("gone", req(&["true"]))
        .await
        .expect_err("created");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    env.runtime.start("gone").await.expect("start");
    env.runtime.wait("gone").await.expect("wait");
    let err = env
        .runtime
        .exec_sync("gone", req(&["true"]))
        .await
        .expect_err("exited");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("has exited"), "{err}");
    let err = env
        .runtime
        .exec_sync("nope", req(&["true"]))
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    env.runtime.delete("gone").await.expect("delete");
}

#[tokio::test]
async fn exec_applies_the_containers_seccomp_and_user() {
    let env = Env::new();
    running(&env, "sec", |c| {
        c.security.seccomp = corten_runtime::spec::SeccompProfile::RuntimeDefault;
        c.security.run_as_user = Some(1000);
    })
    .await;
    let out = exec(&env, "sec", &["id", "-u"]).await;
    assert_eq!(text(&out.stdout), "1000\n", "{out:?}");
    let out = exec(&env, "sec", &["sh", "-c", "unshare -u true; echo rc=$?"]).await;
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("rc=1"), "{all}");
    assert!(all.contains("Operation not permitted"), "{all}");
    env.runtime.delete("sec").await.expect("delete");

    // As root, the runtime-default profile still denies unshare.
    running(&env, "sec-root", |c| {
        c.security.seccomp = corten_runtime::spec::SeccompProfile::RuntimeDefault;
    })
    .await;
    let out = exec(
        &env,
        "sec-root",
        &["sh", "-c", "unshare -u true; echo rc=$?"],
    )
    .await;
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("Operation not permitted") && all.contains("rc=1"),
        "{all}"
    );
    env.runtime.delete("sec-root").await.expect("delete");
}

#[tokio::test]
async fn exec_with_a_tty() {
    let env = Env::new();
    running(&env, "tty", |_| {}).await;
    let mut r = req(&["sh", "-c", "tty; echo err >&2; exit 3"]);
    r.tty = true;
    let out = env.runtime.exec_sync("tty", r).await.expect("exec");
    assert_eq!(out.exit_code, 3, "{out:?}");
    let got = text(&out.stdout);
    assert!(got.contains("/dev/pts/") && got.contains("err"), "{got:?}");
    env.runtime.delete("tty").await.expect("delete");
}

#[tokio::test]
async fn exec_round_trip_time() {
    let env = Env::new();
    running(&env, "rt", |_| {}).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = exec(&env, "rt", &["true"]).await;
        times.push(t.elapsed());
        assert_eq!(out.exit_code, 0, "{out:?}");
    }
    times.sort();
    println!(
        "exec round-trip of `true` over {} runs: min {:?}, median {:?}, p90 {:?}, max {:?}",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    env.runtime.delete("rt").await.expect("delete");
}
