//! Issue 6, end to end: container logs as crictl reads them (the CRI log
//! format, follow, tail, since, timestamps, stream tags) and their rotation
//! through ReopenContainerLog.

mod container_env;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use container_env::Env;
use crictl_tests::{cri, tools, wait};

#[test]
fn log_file_format_and_stream_tags() {
    let env = Env::new();
    let pod = env.pod("logs");
    let id = env.run(
        &pod,
        "logs",
        "streams",
        &["sh", "-c", "echo out; echo err >&2; printf partial"],
    );
    env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(20));
    let (out, err) = env.logs(&id, &[]);
    assert_eq!(out, "out\npartial", "stdout lines only on stdout");
    assert_eq!(err, "err\n", "stderr lines on stderr");

    let v = env.inspect(&id);
    let log_path = v["status"]["logPath"]
        .as_str()
        .expect("log path")
        .to_string();
    assert_eq!(
        log_path,
        env.logs_dir("logs")
            .join("streams.log")
            .display()
            .to_string()
    );
    let text = std::fs::read_to_string(&log_path).expect("log file");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        assert!(humantime::parse_rfc3339(l[0]).is_ok(), "timestamp: {text}");
    }
    let tags: Vec<(&str, &str, &str)> = lines.iter().map(|l| (l[1], l[2], l[3])).collect();
    assert!(tags.contains(&("stdout", "F", "out")), "{text}");
    assert!(tags.contains(&("stderr", "F", "err")), "{text}");
    assert!(tags.contains(&("stdout", "P", "partial")), "{text}");
}

#[test]
fn logs_tail_since_timestamps_and_follow() {
    let env = Env::new();
    let pod = env.pod("flags");
    let id = env.run(
        &pod,
        "flags",
        "talker",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; done; \
             until [ -e /tmp/go ]; do sleep 0.1; done; echo late; sleep 1",
        ],
    );
    // A time after the first lines and before "late", which waits for it.
    env.wait_logged(&id, "line 5");
    let between = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    env.d.crictl(&["exec", "-s", &id, "touch", "/tmp/go"]).ok();
    env.wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(20));

    let (all, _) = env.logs(&id, &[]);
    assert_eq!(all, "line 1\nline 2\nline 3\nline 4\nline 5\nlate\n");
    let (tail, _) = env.logs(&id, &["--tail", "2"]);
    assert_eq!(tail, "line 5\nlate\n");
    let (since, _) = env.logs(&id, &["--since", &between]);
    assert_eq!(since, "late\n");
    let (stamped, _) = env.logs(&id, &["--timestamps", "--tail", "1"]);
    let (ts, text) = stamped
        .trim_end()
        .split_once(' ')
        .expect("timestamp and text");
    assert!(humantime::parse_rfc3339(ts).is_ok(), "{stamped}");
    assert_eq!(text, "late");

    // Follow a running container: lines arrive as written; crictl stops
    // following once the container exits.
    let id = env.run(
        &pod,
        "flags",
        "ticker",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4; do echo tick $i; sleep 0.3; done",
        ],
    );
    let endpoint = format!("unix://{}", env.d.socket().display());
    let mut follow = Command::new(tools::crictl())
        .args(["--runtime-endpoint", &endpoint, "logs", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crictl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let ended = wait::within(Duration::from_secs(30), || {
        follow.try_wait().expect("wait").is_some()
    });
    if !ended {
        let _ = follow.kill();
        let _ = follow.wait();
    }
    let lines = reader.join().expect("reader");
    assert!(
        ended,
        "crictl logs -f did not end after the exit: {lines:?}"
    );
    assert_eq!(lines, ["tick 1", "tick 2", "tick 3", "tick 4"]);
}

#[test]
fn reopen_container_log_after_rotation() {
    let env = Env::new();
    let pod = env.pod("rot");
    let id = env.run(
        &pod,
        "rot",
        "counter",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo n $i; sleep 0.1; done",
        ],
    );
    let log = env.logs_dir("rot").join("counter.log");
    let has_a_line = |path: &std::path::Path| {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains('\n'))
    };
    wait::until("a first line in the log", Duration::from_secs(30), || {
        has_a_line(&log)
    });
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    crictl_tests::cri::block_on(async {
        let mut client = cri::runtime(env.d.socket()).await.expect("connect");
        client
            .reopen_container_log(corten_cri_api::v1::ReopenContainerLogRequest {
                container_id: id.clone(),
            })
            .await
            .expect("reopen");
    });
    wait::until(
        "a first line in the new log",
        Duration::from_secs(30),
        || has_a_line(&log),
    );
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    let new = std::fs::read_to_string(&log).expect("new log");
    assert!(!new.is_empty(), "the shim writes the new file");
    let last_old = old
        .lines()
        .last()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("");
    let first_new = new
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("");
    let (a, b): (u32, u32) = (last_old.parse().expect("n"), first_new.parse().expect("n"));
    assert!(b > a, "the new file continues the old: {a} then {b}");
    let (out, _) = env.logs(&id, &["--tail", "1"]);
    assert!(out.starts_with("n "), "crictl reads the new file: {out}");

    env.d.crictl(&["stop", "--timeout", "0", &id]).ok();
    let err = crictl_tests::cri::block_on(async {
        let mut client = cri::runtime(env.d.socket()).await.expect("connect");
        client
            .reopen_container_log(corten_cri_api::v1::ReopenContainerLogRequest {
                container_id: id,
            })
            .await
            .expect_err("not running")
    });
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
}
