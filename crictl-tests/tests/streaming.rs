//! `crictl exec` (interactive, with and without a terminal) and `crictl
//! attach` through cortend's streaming server, over SPDY and WebSocket.
//!
//! crictl 1.34 exits 1 whenever the remote command exits non-zero and
//! prints `command terminated with exit code N`: the tests check both.

mod container_env;

use std::io::{Read, Write as _};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use container_env::Env;
use crictl_tests::guard::KillOnDrop;
use crictl_tests::wait;
use serde_json::json;

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];

/// Runs crictl with `input` on its stdin.
fn crictl_with_input(env: &Env, args: &[&str], input: &str) -> Output {
    let mut child = env
        .d
        .crictl_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crictl");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("crictl output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sleeper(env: &Env) -> (String, String) {
    let pod = env.pod("shell");
    let id = env.run(&pod, "shell", "sleeper", &["sleep", "3600"]);
    (pod, id)
}

#[test]
fn exec_with_piped_stdin_ends_at_its_end_and_reports_the_exit_code() {
    let env = Env::new();
    let (_pod, id) = sleeper(&env);
    for transport in TRANSPORTS {
        let out = crictl_with_input(
            &env,
            &["exec", "-r", transport, "-i", &id, "sh"],
            "echo hi; echo oops >&2; exit 3\n",
        );
        assert_eq!(text(&out.stdout), "hi\n", "{transport}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("oops"),
            "{transport}: stderr is relayed: {err}"
        );
        assert!(
            err.contains("command terminated with exit code 3"),
            "{transport}: {err}"
        );
        assert!(!out.status.success(), "{transport}");

        // stdin EOF reaches the command: `cat` ends when the input does.
        let cat = crictl_with_input(
            &env,
            &["exec", "-r", transport, "-i", &id, "cat"],
            "line 1\nline 2\n",
        );
        assert!(cat.status.success(), "{transport}: {cat:?}");
        assert_eq!(text(&cat.stdout), "line 1\nline 2\n");

        let f = env.d.crictl(&["exec", "-r", transport, &id, "false"]);
        assert!(f.fails().contains("exit code 1"), "{transport}");
        let t = env.d.crictl(&["exec", "-r", transport, &id, "true"]);
        t.ok();
    }
}

#[test]
fn exec_with_a_terminal_runs_a_shell_and_follows_resizes() {
    let env = Env::new();
    let (_pod, id) = sleeper(&env);
    let crictl = crictl_tests::tools::crictl();
    let endpoint = format!("unix://{}", env.d.socket().display());
    for transport in TRANSPORTS {
        // `script` gives crictl a terminal of 30 rows by 100 columns; the
        // shell in the container reports its terminal's size and a sum.
        let inner = format!(
            "stty rows 30 cols 100; {} --runtime-endpoint {endpoint} exec -r {transport} -it {id} sh",
            crictl.display()
        );
        // The size arrives beside the session, maybe after the prompt: the
        // shell waits for it (the echoed input must not contain "30 100").
        let out = crictl_with_script(
            &inner,
            "until [ \"$(stty size)\" = \"$((30)) $((100))\" ]; do sleep 0.1; done; \
             stty size; echo $((6*7)); exit 4\n",
        );
        let all = text(&out.stdout);
        assert!(
            all.contains("30 100"),
            "{transport}: the size arrived: {all:?}"
        );
        assert!(all.contains("42"), "{transport}: the shell ran: {all:?}");
        assert!(
            all.contains("exit code 4") || text(&out.stderr).contains("exit code 4"),
            "{transport}: {all:?}"
        );
    }
}

/// Runs `command` under `script` (a pseudo-terminal) and, once the shell
/// in the container prompts, types `input`, which must end the session.
fn crictl_with_script(command: &str, input: &str) -> Output {
    let mut child = KillOnDrop(
        std::process::Command::new("script")
            .args(["-qec", command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script"),
    );
    let mut stdin = child.0.stdin.take().expect("stdin");
    let (out_reader, stdout) = collect(child.0.stdout.take().expect("stdout"));
    let (err_reader, stderr) = collect(child.0.stderr.take().expect("stderr"));
    let seen = || String::from_utf8_lossy(&stdout.lock().expect("stdout")).into_owned();
    // Type once the shell prompts (busybox sh as root: "/ # "), as a user would.
    let prompted = wait::within(Duration::from_secs(30), || seen().contains("# "));
    assert!(
        prompted,
        "no prompt from the container's shell: {:?}",
        seen()
    );
    let _ = stdin.write_all(input.as_bytes());
    let _ = stdin.flush();
    // The input ends the session; stdin stays open until it has (its EOF
    // would end the session too).
    let ended = wait::within(Duration::from_secs(60), || {
        matches!(child.0.try_wait(), Ok(Some(_)))
    });
    assert!(ended, "the session did not end: {:?}", seen());
    drop(stdin);
    let status = child.0.wait().expect("script status");
    out_reader.join().expect("stdout reader");
    err_reader.join().expect("stderr reader");
    let take = |sink: &Mutex<Vec<u8>>| std::mem::take(&mut *sink.lock().expect("output"));
    Output {
        status,
        stdout: take(&stdout),
        stderr: take(&stderr),
    }
}

/// Reads `pipe` to its end on a thread of its own; what it read so far.
fn collect(mut pipe: impl Read + Send + 'static) -> (JoinHandle<()>, Arc<Mutex<Vec<u8>>>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let kept = sink.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            kept.lock().expect("output").extend_from_slice(&buf[..n]);
        }
    });
    (reader, sink)
}

#[test]
fn attach_feeds_stdin_and_relays_output() {
    let env = Env::new();
    let pod = env.pod("att");
    for (n, transport) in TRANSPORTS.iter().enumerate() {
        let mut config = env.container_config(
            &format!("echo-{n}"),
            &["sh", "-c", "while read l; do echo got:$l; done; echo bye"],
        );
        config["stdin"] = json!(true);
        config["stdin_once"] = json!(true);
        let id = env.create(&pod, "att", &config);
        env.d.crictl(&["start", &id]).ok();
        let out = crictl_with_input(
            &env,
            &["attach", "-r", transport, "-i", &id],
            "hello\nworld\n",
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("got:hello\ngot:world\n"),
            "{transport}: {out:?}"
        );
        assert!(stdout.contains("bye"), "stdin closed once: {stdout}");
        env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(10));
    }
}

#[test]
fn exec_into_an_exited_container_is_refused() {
    let env = Env::new();
    let pod = env.pod("gone");
    let id = env.run(&pod, "gone", "quick", &["true"]);
    env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(10));
    for transport in TRANSPORTS {
        let err = env.d.crictl(&["exec", "-r", transport, &id, "ls"]).fails();
        assert!(
            err.contains("FailedPrecondition") && err.contains("not running"),
            "{transport}: {err}"
        );
    }
    let err = env.d.crictl(&["attach", &id]).fails();
    assert!(err.contains("FailedPrecondition"), "{err}");
}

/// The processes of the container, as its own `ps` sees them.
fn processes(env: &Env, id: &str) -> String {
    env.d.crictl(&["exec", "-s", id, "ps", "-o", "args"]).ok()
}

#[test]
fn many_sessions_leak_nothing_and_a_vanished_client_ends_its_command() {
    let env = Env::new();
    let (_pod, id) = sleeper(&env);
    let pid = env.d.pid().expect("daemon pid");
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // Warm up once, then count.
    env.d.crictl(&["exec", &id, "true"]).ok();
    let before = fds();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let args: Vec<String> = [
                "exec",
                "-r",
                TRANSPORTS[i % 2],
                id.as_str(),
                "sh",
                "-c",
                &format!("echo session-{i}"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let cmd = env
                .d
                .crictl_command(&args.iter().map(String::as_str).collect::<Vec<_>>());
            std::thread::spawn(move || {
                let mut cmd = cmd;
                let out = cmd.stdin(Stdio::null()).output().expect("crictl");
                (i, out)
            })
        })
        .collect();
    for t in threads {
        let (i, out) = t.join().expect("thread");
        assert!(out.status.success(), "session {i}: {out:?}");
        assert_eq!(text(&out.stdout), format!("session-{i}\n"));
    }
    // Sessions end asynchronously after the client has its status.
    let drained = wait::within(Duration::from_secs(30), || fds() <= before + 2);
    assert!(drained, "daemon fds grew from {before} to {}", fds());

    // A client that goes away mid-command: the command ends with it.
    for transport in TRANSPORTS {
        let mut client = env
            .d
            .crictl_command(&["exec", "-r", transport, &id, "sleep", "4242"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crictl exec");
        wait::until(
            &format!("{transport}: the exec to run"),
            Duration::from_secs(30),
            || processes(&env, &id).contains("sleep 4242"),
        );
        let _ = client.kill();
        let _ = client.wait();
        wait::until(
            &format!("{transport}: the command to end with its client"),
            Duration::from_secs(30),
            || !processes(&env, &id).contains("sleep 4242"),
        );
    }
    // No resize FIFOs or other exec leftovers in the bundle.
    let bundle = env.d.dir().join("state/containers").join(&id);
    assert!(bundle.is_dir(), "{}", bundle.display());
    let leftovers: Vec<_> = std::fs::read_dir(&bundle)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("resize-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
