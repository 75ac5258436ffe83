//! Issue 6, end to end: the Docker tutorial's flow through the real crictl
//! against cortend, with a real registry and real pods.

mod container_env;

use std::time::Duration;

use container_env::Env;

#[test]
fn tutorial_pull_run_list_exec_logs_stop_remove() {
    let env = Env::new();
    let images = env.d.crictl(&["images"]).ok();
    assert!(images.contains("docker.io/library/busybox"), "{images}");

    let pod = env.pod("tutorial");
    let ls = env.run(&pod, "tutorial", "ls", &["ls", "-l", "/"]);
    env.wait_state(&ls, "CONTAINER_EXITED", Duration::from_secs(20));
    let (out, _) = env.logs(&ls, &[]);
    assert!(out.contains("bin") && out.contains("etc"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("total ")), "{out}");

    let sleeper = env.run(&pod, "tutorial", "sleep", &["sleep", "3600"]);
    assert_eq!(env.state(&sleeper), "CONTAINER_RUNNING");

    let ps = env.d.crictl(&["ps", "-a", "-o", "json"]).json();
    let listed = ps["containers"].as_array().cloned().unwrap_or_default();
    let state_of = |id: &str| {
        listed
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["state"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state_of(&ls).as_deref(), Some("CONTAINER_EXITED"), "{ps}");
    assert_eq!(
        state_of(&sleeper).as_deref(),
        Some("CONTAINER_RUNNING"),
        "{ps}"
    );
    let running = env.d.crictl(&["ps", "-q"]).ok();
    assert!(
        running.contains(&sleeper) && !running.contains(&ls),
        "{running}"
    );

    let ls_out = env.d.crictl(&["exec", "-s", &sleeper, "ls", "/"]).ok();
    assert!(ls_out.contains("bin"), "{ls_out}");
    let uname = env.d.crictl(&["exec", "-s", &sleeper, "uname", "-a"]).ok();
    assert!(uname.starts_with("Linux"), "{uname}");

    env.d.crictl(&["stop", "--timeout", "0", &sleeper]).ok();
    let v = env.inspect(&sleeper);
    assert_eq!(v["status"]["state"], "CONTAINER_EXITED", "{v}");
    assert_eq!(v["status"]["exitCode"], 137, "{v}");
    env.d.crictl(&["rm", &sleeper, &ls]).ok();
    let ps = env.d.crictl(&["ps", "-a", "-q"]).ok();
    assert!(ps.trim().is_empty(), "{ps}");
    let _ = env.d.crictl(&["stopp", &pod]);
    let _ = env.d.crictl(&["rmp", &pod]);
    env.d.crictl(&["rmi", "busybox"]).ok();
    let images = env.d.crictl(&["images", "-q"]).ok();
    assert!(images.trim().is_empty(), "{images}");
}
