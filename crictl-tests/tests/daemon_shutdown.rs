//! Issue 2: SIGTERM lets the calls in flight finish (within the grace
//! period) before the daemon exits 0 and removes its socket.

use crictl_tests::proxy::SlowProxy;
use crictl_tests::{Compression, DaemonBuilder, ImageBuilder, Registry, RegistryOptions};

#[test]
fn sigterm_drains_a_pull_in_flight() {
    let reg = Registry::start(RegistryOptions::plain()).expect("registry");
    ImageBuilder::big(12 << 20, 1)
        .expect("builder")
        .build(Compression::Gzip)
        .expect("build")
        .push(&reg, "drain", "v1")
        .expect("push");
    // About 2 s on the wire: the pull is surely running when SIGTERM comes.
    let proxy = SlowProxy::start(&reg.addr(), 6 << 20).expect("proxy");
    let mut d = DaemonBuilder::new()
        .config(|c| {
            c.insert("shutdown_grace_seconds".into(), toml::Value::Integer(30));
        })
        .start()
        .expect("start");
    let name = format!("{}/drain:v1", proxy.addr());
    std::thread::scope(|s| {
        let pull = s.spawn(|| d.crictl(&["pull", &name]));
        d.wait_until_unpacking();
        let pid = d.pid().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let out = pull.join().expect("pull thread");
        assert!(
            out.output.status.success(),
            "the pull in flight was cut: {}",
            out.stderr()
        );
    });
    let status = d.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(!d.socket().exists(), "socket left behind");
    let log = d.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("image pulled"), "{log}");
}
