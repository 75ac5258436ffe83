//! Issue 2: the daemon serves CRI on its socket, the real crictl talks to it,
//! and its configuration, locking and shutdown behave.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::process::Command;

use crictl_tests::{tools, Daemon, DaemonBuilder};

#[test]
fn crictl_version_names_corten() {
    let d = Daemon::start();
    let out = d.crictl(&["version"]).ok();
    assert!(out.contains("RuntimeName:  corten"), "{out}");
    assert!(out.contains("RuntimeApiVersion:  v1"), "{out}");
    assert!(
        out.contains(&format!("RuntimeVersion:  {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn socket_is_a_socket_with_mode_0660() {
    let d = Daemon::start();
    let meta = std::fs::metadata(d.socket()).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

#[test]
fn crictl_info_reports_conditions_and_effective_config() {
    let d = Daemon::start();
    let info = d.crictl(&["info"]).json();
    let conditions = info["status"]["conditions"].as_array().expect("conditions");
    let cond = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {info}"))
            .clone()
    };
    assert_eq!(cond("RuntimeReady")["status"], true);
    let net = cond("NetworkReady");
    assert_eq!(net["status"], false);
    assert_eq!(net["reason"], "NetworkPluginNotReady");
    assert!(
        net["message"].as_str().unwrap_or("").contains("net.d"),
        "{net}"
    );
    // The verbose info carries the effective configuration.
    let root = d.dir().join("root").display().to_string();
    assert_eq!(info["config"]["root_dir"], root.as_str());
    assert_eq!(info["config"]["cgroup"]["driver"], "cgroupfs");
}

#[test]
fn network_becomes_ready_when_a_cni_config_appears() {
    let d = Daemon::start();
    let ready = |d: &Daemon| {
        let info = d.crictl(&["info"]).json();
        info["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "NetworkReady"))
            .map(|c| c["status"] == true)
            .unwrap_or(false)
    };
    assert!(!ready(&d));
    // The loopback plugin from Debian's containernetworking-plugins.
    assert!(
        std::path::Path::new("/usr/lib/cni/loopback").is_file(),
        "install containernetworking-plugins (crictl-tests/run.sh does)"
    );
    std::fs::write(
        d.dir().join("net.d/99-loopback.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-test","plugins":[{"type":"loopback"}]}"#,
    )
    .expect("write conflist");
    assert!(
        ready(&d),
        "NetworkReady stays false after a valid config appeared"
    );
    let info = d.crictl(&["info"]).json();
    assert_eq!(info["cniconfig"]["name"], "lo-test");
}

#[test]
fn unimplemented_rpc_gives_a_clean_error() {
    let d = Daemon::start();
    // crictl has no command for CheckpointContainer: ask directly.
    let status = crictl_tests::cri::block_on(async {
        let mut client = crictl_tests::cri::runtime(d.socket())
            .await
            .expect("connect");
        client
            .checkpoint_container(corten_cri_api::v1::CheckpointContainerRequest {
                container_id: "c".into(),
                location: "/tmp/x".into(),
                timeout: 0,
            })
            .await
            .expect_err("not implemented")
    });
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("CheckpointContainer is not implemented by corten yet"),
        "{status:?}"
    );
    // The daemon is still serving afterwards.
    d.crictl(&["version"]).ok();
}

#[test]
fn unknown_config_key_is_refused_naming_file_and_key() {
    let b = DaemonBuilder::new().config(|c| {
        c.insert("bogus_key".into(), toml::Value::Integer(1));
    });
    let config = b.dir().join("config.toml").display().to_string();
    let err = b.start().err().expect("cortend must refuse an unknown key");
    assert!(err.contains(&config), "{err}");
    assert!(err.contains("unknown field `bogus_key`"), "{err}");
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn bad_config_value_is_refused_with_what_was_expected() {
    let b = DaemonBuilder::new().config(|c| {
        c.insert("log_level".into(), toml::Value::String("chatty".into()));
    });
    let err = b.start().err().expect("cortend must refuse a bad value");
    assert!(err.contains("key `log_level`"), "{err}");
    assert!(
        err.contains("expected one of error, warn, info, debug, trace"),
        "{err}"
    );

    let b = DaemonBuilder::new().config(|c| {
        c.insert("cgroup".into(), toml::toml! { driver = "systemd" }.into());
    });
    let err = b
        .start()
        .err()
        .expect("cortend must refuse an unsupported driver");
    assert!(
        err.contains("unknown variant `systemd`, expected `cgroupfs`"),
        "{err}"
    );
}

#[test]
fn second_daemon_on_the_same_state_dir_refuses_to_start() {
    let first = Daemon::start();
    let second_socket = first.dir().join("second.sock");
    let out = Command::new(tools::cortend())
        .arg("--config")
        .arg(first.config_path())
        .arg("--listen")
        .arg(&second_socket)
        .output()
        .expect("run second cortend");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = first.pid().expect("first is running");
    assert!(
        err.contains(&format!("another cortend (pid {pid})")),
        "{err}"
    );
    assert!(!second_socket.exists(), "the second daemon must not bind");
    // The first one keeps its socket and keeps serving.
    first.crictl(&["version"]).ok();
}

#[test]
fn second_daemon_on_a_live_socket_does_not_steal_it() {
    let first = Daemon::start();
    let other_state = first.dir().join("other-state");
    let out = Command::new(tools::cortend())
        .arg("--config")
        .arg(first.config_path())
        .arg("--state")
        .arg(&other_state)
        .output()
        .expect("run second cortend");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by another process"), "{err}");
    first.crictl(&["version"]).ok();
}

#[test]
fn stale_socket_from_a_crashed_daemon_is_replaced() {
    let b = DaemonBuilder::new();
    let sock = b.dir().join("cortend.sock");
    // A socket file nobody listens on any more, as a crash leaves it.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists());
    let d = b.start().expect("cortend replaces the stale socket");
    d.crictl(&["version"]).ok();
}

#[test]
fn sigterm_exits_zero_and_removes_the_socket() {
    let mut d = Daemon::start();
    d.crictl(&["version"]).ok();
    let status = d.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(!d.socket().exists(), "socket left behind");
    assert!(d.log().contains("shutting down"), "{}", d.log());
}

#[test]
fn printed_config_fed_back_starts_the_daemon_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = |s: &str| tmp.path().join(s).display().to_string();
    // The defaults, pointed at the test's own directories by flags.
    let printed = Command::new(tools::cortend())
        .args(["--root", &path("root"), "--state", &path("state")])
        .args([
            "--listen",
            &path("c.sock"),
            "--log-level",
            "debug",
            "config",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("cortend config");
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).expect("utf-8");
    // Every key is set, and explained by the comment line above it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        assert!(line.contains(" = "), "not a key: {line}");
        assert!(
            i > 0 && lines[i - 1].starts_with("# "),
            "{line} is not explained"
        );
    }
    assert!(text.contains("# The cgroup driver"), "{text}");
    std::fs::write(tmp.path().join("printed.toml"), &text).expect("write");

    // Fed back alone, it prints itself again, unchanged.
    let again = Command::new(tools::cortend())
        .arg("--config")
        .arg(tmp.path().join("printed.toml"))
        .arg("config")
        .output()
        .expect("cortend config again");
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);

    // And it starts a daemon with exactly that configuration.
    let b = DaemonBuilder::new().config(|c| {
        *c = text.parse::<toml::Table>().expect("printed config is TOML");
    });
    let d = b.start().expect("daemon starts from the printed config");
    let info = d.crictl(&["info"]).json();
    assert_eq!(info["config"]["root_dir"], path("root").as_str());
    assert_eq!(info["config"]["listen"], path("c.sock").as_str());
    assert_eq!(info["config"]["cni"]["conf_dir"], "/etc/cni/net.d");
}
