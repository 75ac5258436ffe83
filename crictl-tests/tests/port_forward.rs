//! `crictl port-forward` over SPDY and over WebSocket (SPDY tunnelled),
//! through cortend's streaming server, to a listener in a pod's network
//! namespace; and the streaming server's refusals (unknown token, reused
//! token, bad stream combinations).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crictl_tests::guard::{free_port, KillOnDrop};
use crictl_tests::{cri, wait, Daemon, DaemonBuilder, TestNetwork};

fn setup() -> (TestNetwork, Daemon, String) {
    let builder = DaemonBuilder::new();
    let net = TestNetwork::new(&builder);
    let daemon = builder.start().expect("cortend starts");
    let config = serde_json::json!({
        "metadata": {"name": "fwd", "namespace": "e2e", "uid": "uid-fwd", "attempt": 0},
        "linux": {},
    });
    let path = daemon.dir().join("pod.json");
    std::fs::write(&path, config.to_string()).expect("write pod.json");
    let id = daemon
        .crictl(&["runp", path.to_str().expect("utf-8")])
        .ok()
        .trim()
        .to_string();
    (net, daemon, id)
}

/// A one-shot server in the pod: reads a line from the first connection and
/// answers `<prefix>:<line>`.
fn serve_in_pod(daemon: &Daemon, pod: &str, port: u16, prefix: &str) -> KillOnDrop {
    let netns = daemon.dir().join("state/pods").join(pod).join("net");
    KillOnDrop(
        Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["busybox", "nc", "-l", "-p", &port.to_string(), "-e"])
            .args(["sh", "-c", &format!("read l; echo \"{prefix}:$l\"")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nc -l in the pod"),
    )
}

/// Starts `crictl port-forward` and waits until it listens.
fn forward(daemon: &Daemon, pod: &str, local: u16, remote: u16, transport: &str) -> KillOnDrop {
    let endpoint = format!("unix://{}", daemon.socket().display());
    let mut child = Command::new(crictl_tests::tools::crictl())
        .args(["--runtime-endpoint", &endpoint, "port-forward"])
        .args(["-r", transport, pod, &format!("{local}:{remote}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crictl port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let helper = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("Forwarding from"),
        "crictl said {first:?}"
    );
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    helper
}

fn exchange(port: u16, send: &str) -> String {
    let mut got = String::new();
    wait::until(
        &format!("an answer through port {port}"),
        Duration::from_secs(30),
        || {
            got.clear();
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(send.as_bytes());
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.read_to_string(&mut got);
            }
            !got.is_empty()
        },
    );
    got
}

fn forwards_both_ways(transport: &str) {
    let (_net, daemon, pod) = setup();
    let remote = 8080;
    let _server = serve_in_pod(&daemon, &pod, remote, "pod-got");
    let local = free_port();
    let _fwd = forward(&daemon, &pod, local, remote, transport);
    // Both ways: the pod answers with what the host sent.
    assert_eq!(
        exchange(local, "hello-from-host\n"),
        "pod-got:hello-from-host\n"
    );
}

#[test]
fn port_forward_over_spdy() {
    forwards_both_ways("spdy");
}

#[test]
fn port_forward_over_websocket() {
    forwards_both_ways("websocket");
}

#[test]
fn streaming_urls_are_single_use_and_bad_requests_are_refused() {
    let (_net, daemon, pod) = setup();
    crictl_tests::cri::block_on(async {
        let mut client = cri::runtime(daemon.socket()).await.expect("connect");
        let url = client
            .port_forward(corten_cri_api::v1::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![],
            })
            .await
            .expect("port forward url")
            .into_inner()
            .url;
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        // First use: a plain request without an upgrade is refused, and
        // consumes the token.
        let first = http_post(&url);
        assert!(first.starts_with("HTTP/1.1 400"), "{first}");
        let again = http_post(&url);
        assert!(again.starts_with("HTTP/1.1 404"), "a used token: {again}");
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
        let unknown = http_post(&format!("{base}/0000"));
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");

        let unknown_pod = client
            .port_forward(corten_cri_api::v1::PortForwardRequest {
                pod_sandbox_id: "no-such-pod".into(),
                port: vec![],
            })
            .await
            .expect_err("unknown pod");
        assert_eq!(unknown_pod.code(), tonic::Code::NotFound);
        let tty_and_stderr = client
            .exec(corten_cri_api::v1::ExecRequest {
                container_id: "whatever".into(),
                cmd: vec!["sh".into()],
                tty: true,
                stdin: true,
                stdout: true,
                stderr: true,
            })
            .await
            .expect_err("tty with stderr");
        assert_eq!(tty_and_stderr.code(), tonic::Code::InvalidArgument);
        let no_streams = client
            .attach(corten_cri_api::v1::AttachRequest {
                container_id: "whatever".into(),
                ..Default::default()
            })
            .await
            .expect_err("no streams");
        assert_eq!(no_streams.code(), tonic::Code::InvalidArgument);

        // A pod that is not ready has no network to forward into.
        daemon.crictl(&["stopp", &pod]).ok();
        let stopped = client
            .port_forward(corten_cri_api::v1::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![],
            })
            .await
            .expect_err("stopped pod");
        assert_eq!(stopped.code(), tonic::Code::FailedPrecondition);
    });
}

/// A bare HTTP/1.1 POST to `url`; returns the raw response head.
fn http_post(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = TcpStream::connect(host).expect("connect to the streaming server");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        s,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Sends `head` (an HTTP request head) on a fresh connection to the
/// streaming server and, once it has answered with a response head, `after`;
/// returns everything it answered until it closed the connection (or went
/// quiet for 5 s).
fn raw_exchange(url: &str, head: &str, after: &[u8]) -> Vec<u8> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, _) = rest.split_once('/').expect("path");
    let mut s = TcpStream::connect(host).expect("connect to the streaming server");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(head.as_bytes()).expect("send head");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(after);
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn hostile_streaming_clients_leave_the_daemon_serving() {
    let (_net, daemon, pod) = setup();
    let url = || {
        crictl_tests::cri::block_on(async {
            let mut client = cri::runtime(daemon.socket()).await.expect("connect");
            client
                .port_forward(corten_cri_api::v1::PortForwardRequest {
                    pod_sandbox_id: pod.clone(),
                    port: vec![],
                })
                .await
                .expect("port forward url")
                .into_inner()
                .url
        })
    };
    let head = |u: &str, protocol: &str| {
        let path = u.splitn(4, '/').nth(3).unwrap_or("");
        format!(
            "POST /{path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
        )
    };

    // No protocol in common: 403 naming the ones served.
    let u = url();
    let answer = String::from_utf8_lossy(&raw_exchange(&u, &head(&u, "v9.channel.k8s.io"), b""))
        .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 403"), "{answer}");
    assert!(
        answer.contains("x-accepted-stream-protocol-versions: portforward.k8s.io"),
        "{answer}"
    );

    // Upgraded, then garbage: frames of another version, a SYN_STREAM whose
    // header block is not zlib, a frame claiming 16 MiB and cut short.
    let garbage: Vec<Vec<u8>> = vec![
        vec![0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4],
        {
            let mut f = vec![0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12];
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
            f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]);
            f
        },
        vec![0x00, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 9, 9, 9],
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ];
    for bytes in &garbage {
        let u = url();
        let answer = raw_exchange(&u, &head(&u, "portforward.k8s.io"), bytes);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    }

    // Still serving: CRI calls and a real forward through the same server.
    daemon.crictl(&["version"]).ok();
    let _server = serve_in_pod(&daemon, &pod, 8080, "still");
    let local = free_port();
    let _fwd = forward(&daemon, &pod, local, 8080, "spdy");
    assert_eq!(exchange(local, "up\n"), "still:up\n");
    assert!(!daemon.log().contains("panicked"), "the daemon panicked");
}
