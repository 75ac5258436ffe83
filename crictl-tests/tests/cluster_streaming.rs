//! Issue 13: kubectl's streaming commands in a one-node cluster reach
//! cortend's containers through the API server and kubelet: `logs -f`,
//! `exec` (plain, `-i`, `-it` with a terminal that is resized), `attach`,
//! `port-forward`, `cp` both ways (tar over exec), and `debug` with an
//! ephemeral container in a target container's pid namespace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crictl_tests::cluster::Streamed;
use crictl_tests::{tools, Cluster};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Pulls and pod starts on a loaded 2-core machine.
const POD_START: Duration = Duration::from_secs(300);
/// A stream's next output, through the API server, kubelet and cortend.
const STREAM: Duration = Duration::from_secs(60);

fn pod(name: &str, container: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
    })
}

fn busybox(name: &str, script: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c", script]})
}

/// Applies `manifest` and waits until its pod is Ready.
fn run_pod(c: &Cluster, manifest: &Value) {
    c.apply(manifest);
    let name = manifest["metadata"]["name"].as_str().expect("pod name");
    c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=300s",
    ])
    .ok();
}

const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

#[test]
fn logs_follow_a_container_until_it_exits() {
    let c = Cluster::start();
    let script = "echo started; \
                  while true; do \
                    if [ -f /tmp/go ]; then rm /tmp/go; echo after-go; fi; \
                    if [ -f /tmp/stop ]; then echo bye; exit 0; fi; \
                    sleep 0.2; \
                  done";
    run_pod(&c, &pod("follow", busybox("app", script)));
    let mut logs = Streamed::spawn(
        c.kubectl_command(&["logs", "-f", "follow"]),
        "kubectl logs -f",
    );
    logs.wait_stdout("the first line", STREAM, |o| o == "started\n");
    // Lines written after kubectl started following reach it.
    for round in 1..=2 {
        c.kubectl(&["exec", "follow", "--", "touch", "/tmp/go"])
            .ok();
        logs.wait_stdout("a line written since", STREAM, |o| {
            o.matches("after-go\n").count() == round
        });
    }
    // The stream ends with the container.
    c.kubectl(&["exec", "follow", "--", "touch", "/tmp/stop"])
        .ok();
    logs.wait_stdout("the last line", STREAM, |o| o.ends_with("bye\n"));
    let status = logs.wait_exit(STREAM);
    assert!(
        status.is_some_and(|s| s.success()),
        "kubectl logs -f did not end with the container: {status:?} {}",
        logs.stderr()
    );
    assert_eq!(logs.stdout(), "started\nafter-go\nafter-go\nbye\n");
}

#[test]
fn exec_runs_plain_with_stdin_and_with_a_resized_terminal() {
    let c = Cluster::start();
    run_pod(&c, &pod("shell", busybox("app", SLEEPER)));

    // Plain: both streams and the exit code come back.
    let plain = c.kubectl(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(plain.output.status.code(), Some(3), "{}", plain.stderr());
    assert_eq!(plain.stdout(), "out\n");
    assert!(plain.stderr().starts_with("err\n"), "{}", plain.stderr());

    // -i: stdin reaches the command, its end ends it.
    let upper = c.kubectl_with_input(
        &["exec", "-i", "shell", "--", "tr", "a-z", "A-Z"],
        "hello\nworld\n",
    );
    assert_eq!(upper.ok(), "HELLO\nWORLD\n");

    // -it: kubectl in a terminal (`script`) of 30x100 runs a shell in one
    // of the same size; resizing kubectl's terminal resizes the shell's.
    assert!(
        tools::which("script").is_some(),
        "script (util-linux) is needed for a terminal"
    );
    let kubectl = c.kubectl_command(&["exec", "-it", "shell", "--", "sh"]);
    let inner = format!("tty; stty rows 30 cols 100; exec {}", shell_words(&kubectl));
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]);
    let mut term = Streamed::spawn(cmd, "kubectl exec -it");
    term.wait_stdout("the terminal's name", STREAM, |o| o.contains('\n'));
    let pts = term
        .stdout()
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .expect("tty printed its name");
    assert!(pts.starts_with("/dev/pts/"), "{pts:?}");
    // busybox sh as root prompts "/ # ".
    term.wait_stdout("the container's prompt", STREAM, |o| o.contains("# "));
    term.write(
        "until [ \"$(stty size)\" = \"30 100\" ]; do sleep 0.1; done; \
         echo size-$(stty size | tr ' ' x)\n",
    );
    term.wait_stdout("the first size", STREAM, |o| o.contains("size-30x100"));

    let resized = std::process::Command::new("stty")
        .args(["-F", &pts, "rows", "40", "cols", "120"])
        .status()
        .expect("run stty");
    assert!(resized.success(), "stty -F {pts}: {resized}");
    term.write(
        "until [ \"$(stty size)\" = \"40 120\" ]; do sleep 0.1; done; \
         echo resized-$(stty size | tr ' ' x); exit 5\n",
    );
    term.wait_stdout("the new size", STREAM, |o| o.contains("resized-40x120"));
    let status = term.wait_exit(STREAM);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(5),
        "kubectl exec -it ends with the shell's code: {}",
        term.stdout()
    );
}

/// `cmd` as one line of sh.
fn shell_words(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn attach_reaches_the_stdin_and_stdout_of_a_running_container() {
    let c = Cluster::start();
    let mut app = busybox(
        "app",
        "echo ready; while read line; do echo \"got $line\"; done; echo eof",
    );
    app["stdin"] = json!(true);
    run_pod(&c, &pod("attach", app));
    let mut attach = Streamed::spawn(
        c.kubectl_command(&["attach", "-i", "attach", "-c", "app"]),
        "kubectl attach -i",
    );
    // kubectl says on stderr when it attaches; what it reads from its
    // stdin meanwhile waits in the pipe.
    let attached = crictl_tests::wait::within(STREAM, || {
        attach
            .stderr()
            .contains("If you don't see a command prompt")
    });
    assert!(attached, "{}", attach.stderr());
    attach.write("hello\n");
    attach.wait_stdout("the answer", STREAM, |o| o.contains("got hello\n"));
    attach.write("again\n");
    attach.wait_stdout("the second answer", STREAM, |o| {
        o.contains("got hello\ngot again\n")
    });
    // The container was not restarted for it.
    let p = c.get(&["pod", "attach"]).expect("pod attach");
    assert_eq!(
        p["status"]["containerStatuses"][0]["restartCount"], 0,
        "{}",
        p["status"]
    );
    assert!(!attach.stdout().contains("eof"));
}

#[test]
fn port_forward_reaches_a_server_in_the_pod() {
    let c = Cluster::start();
    // busybox's httpd serves a page and a larger file on port 8080.
    let script = "mkdir -p /www && echo hello-from-pod > /www/index.html && \
                  seq 1 200000 > /www/numbers && exec httpd -f -p 8080 -h /www";
    let mut app = busybox("web", script);
    app["ports"] = json!([{"containerPort": 8080}]);
    app["readinessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    run_pod(&c, &pod("server", app));
    let mut forward = Streamed::spawn(
        c.kubectl_command(&["port-forward", "pod/server", ":8080"]),
        "kubectl port-forward",
    );
    forward.wait_stdout("the local port", STREAM, |o| o.contains(" -> 8080"));
    let out = forward.stdout();
    let port: u16 = out
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {out:?}"));

    let expected: String = (1..=200_000).map(|n| format!("{n}\n")).collect();
    // Several connections through the one forward.
    for _ in 0..3 {
        assert_eq!(http_get(port, "/"), "hello-from-pod\n");
    }
    assert_eq!(http_get(port, "/numbers").len(), expected.len());
    assert!(http_get(port, "/numbers") == expected);
}

/// The body of `GET path` on 127.0.0.1:`port` (HTTP/1.0, read to the end).
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forward");
    s.set_read_timeout(Some(STREAM)).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("reply");
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {reply:?}"));
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_string()
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(Sha256::digest(&bytes))
}

#[test]
fn cp_copies_into_and_out_of_a_container() {
    let c = Cluster::start();
    let script = "mkdir -p /tmp/out/sub && seq 1 50000 > /tmp/out/numbers && \
                  echo inner > /tmp/out/sub/file && trap 'exit 0' TERM; \
                  while true; do sleep 1; done";
    run_pod(&c, &pod("files", busybox("app", script)));
    let local = tempfile::tempdir().expect("tempdir");

    // Into the container: a directory with a binary file and a text file.
    let src = local.path().join("in");
    std::fs::create_dir_all(src.join("deep")).expect("mkdir");
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("blob"), &blob).expect("write blob");
    std::fs::write(src.join("deep/text"), "copied in\n").expect("write text");
    c.kubectl(&[
        "cp",
        &src.display().to_string(),
        "default/files:/tmp/in",
        "-c",
        "app",
    ])
    .ok();
    let sums = c
        .kubectl(&[
            "exec",
            "files",
            "--",
            "sha256sum",
            "/tmp/in/blob",
            "/tmp/in/deep/text",
        ])
        .ok();
    assert!(
        sums.contains(&format!("{}  /tmp/in/blob", sha256_file(&src.join("blob")))),
        "{sums}"
    );
    assert!(
        sums.contains(&format!(
            "{}  /tmp/in/deep/text",
            sha256_file(&src.join("deep/text"))
        )),
        "{sums}"
    );

    // Out of it: the directory the container wrote.
    let dst = local.path().join("out");
    c.kubectl(&[
        "cp",
        "default/files:/tmp/out",
        &dst.display().to_string(),
        "-c",
        "app",
    ])
    .ok();
    let numbers: String = (1..=50_000).map(|n| format!("{n}\n")).collect();
    let read = |p: &str| std::fs::read_to_string(dst.join(p)).unwrap_or_default();
    assert!(read("numbers") == numbers, "numbers differ");
    assert_eq!(read("sub/file"), "inner\n");
}

#[test]
fn debug_runs_an_ephemeral_container_in_the_target_pid_namespace() {
    let c = Cluster::start();
    run_pod(&c, &pod("target", busybox("app", "exec sleep 3601")));

    // Not attached: the ephemeral container runs `ps` and exits; its log
    // shows the target's pid 1.
    c.kubectl(&[
        "debug",
        "target",
        "--image=busybox",
        "--target=app",
        "-c",
        "dbg",
        "--",
        "ps",
    ])
    .ok();
    let pod = c.wait_for("dbg to finish", POD_START, &["pod", "target"], |p| {
        ephemeral(p, "dbg").is_some_and(|s| s["state"]["terminated"].is_object())
    });
    let status = ephemeral(&pod, "dbg").expect("dbg status");
    assert_eq!(status["state"]["terminated"]["exitCode"], 0, "{status}");
    let ps = c.kubectl(&["logs", "target", "-c", "dbg"]).ok();
    assert_target_pid_one(&ps);

    // Attached (-i): a shell in the ephemeral container, fed on stdin.
    let shell = c.kubectl_with_input(
        &[
            "debug",
            "-i",
            "target",
            "--image=busybox",
            "--target=app",
            "-c",
            "dbg-shell",
            "--",
            "sh",
        ],
        "ps\nexit 0\n",
    );
    assert_target_pid_one(&shell.ok());
    // The target kept running through both.
    let pod = c.get(&["pod", "target"]).expect("pod target");
    let app = &pod["status"]["containerStatuses"][0];
    assert!(app["state"]["running"].is_object(), "{app}");
    assert_eq!(app["restartCount"], 0, "{app}");
}

fn ephemeral<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["status"]["ephemeralContainerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// `ps` output seen from the target's pid namespace: its `sleep 3601` is
/// pid 1 there.
fn assert_target_pid_one(ps: &str) {
    let line = ps
        .lines()
        .find(|l| l.contains("sleep 3601"))
        .unwrap_or_else(|| panic!("the target's process is not seen: {ps}"));
    assert_eq!(line.split_whitespace().next(), Some("1"), "{ps}");
}
