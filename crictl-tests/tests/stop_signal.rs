//! CRI stop signals (KEP-4960): `ContainerConfig.stop_signal` is what
//! StopContainer sends first, over the image's `StopSignal`, kept across a
//! daemon restart; ContainerStatus reports the signal in effect (the
//! request's, else the image's, else SIGTERM). crictl has no flag for it:
//! the tests' own CRI client asks.

mod container_env;

use container_env::Env;
use corten_cri_api::v1 as k8s;
use crictl_tests::{cri, ImageBuilder};

/// Exits with a code naming the signal that ended it, once it says ready.
const SCRIPT: &str = "trap 'exit 42' USR1; trap 'exit 43' TERM; trap 'exit 44' USR2; \
                      echo ready; sleep 3600 & wait";

fn config(name: &str, signal: k8s::Signal) -> k8s::ContainerConfig {
    k8s::ContainerConfig {
        command: vec!["sh".into(), "-c".into(), SCRIPT.into()],
        log_path: format!("{name}.log"),
        stop_signal: signal as i32,
        ..cri::sleeper(name)
    }
}

fn create(env: &Env, pod: &str, config: k8s::ContainerConfig) -> Result<String, tonic::Status> {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        cri::run_container(&mut c, pod, config).await
    })
}

fn status(env: &Env, id: &str) -> k8s::ContainerStatus {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.container_status(k8s::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .expect("a status")
    })
}

fn stop(env: &Env, id: &str) {
    cri::block_on(async {
        let mut c = cri::runtime(env.d.socket()).await.expect("connect");
        c.stop_container(k8s::StopContainerRequest {
            container_id: id.into(),
            timeout: 60,
        })
        .await
        .expect("StopContainer");
    });
}

/// Runs a container of `config` in `pod` until its traps are set.
fn ready(env: &Env, pod: &str, config: k8s::ContainerConfig) -> String {
    let id = create(env, pod, config).expect("the container runs");
    env.wait_logged(&id, "ready");
    id
}

#[test]
fn the_requested_signal_wins_over_the_images_and_survives_a_restart() {
    let mut env = Env::with_image(ImageBuilder::busybox().stop_signal("SIGUSR2"));
    let pod = env.pod("sig");

    let asked = ready(&env, &pod, config("asked", k8s::Signal::Sigusr1));
    let image = ready(&env, &pod, config("image", k8s::Signal::RuntimeDefault));
    assert_eq!(
        status(&env, &asked).stop_signal,
        k8s::Signal::Sigusr1 as i32
    );
    assert_eq!(
        status(&env, &image).stop_signal,
        k8s::Signal::Sigusr2 as i32
    );

    env.d.restart();
    assert_eq!(
        status(&env, &asked).stop_signal,
        k8s::Signal::Sigusr1 as i32,
        "recorded across the restart"
    );
    stop(&env, &asked);
    let s = status(&env, &asked);
    assert_eq!(s.state, k8s::ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 42, "SIGUSR1 ended it: {s:?}");
    assert_eq!(s.stop_signal, k8s::Signal::Sigusr1 as i32);

    stop(&env, &image);
    let s = status(&env, &image);
    assert_eq!(s.exit_code, 44, "the image's SIGUSR2 ended it: {s:?}");
    assert_eq!(s.stop_signal, k8s::Signal::Sigusr2 as i32);
}

#[test]
fn without_a_signal_sigterm_is_sent_and_reported_and_unknown_ones_are_refused() {
    let env = Env::new();
    let pod = env.pod("term");
    let id = ready(&env, &pod, config("plain", k8s::Signal::RuntimeDefault));
    assert_eq!(status(&env, &id).stop_signal, k8s::Signal::Sigterm as i32);
    stop(&env, &id);
    let s = status(&env, &id);
    assert_eq!(s.exit_code, 43, "SIGTERM ended it: {s:?}");
    assert_eq!(s.stop_signal, k8s::Signal::Sigterm as i32);

    let before = env.d.crictl(&["ps", "-a", "-q"]).ok();
    let bad = k8s::ContainerConfig {
        stop_signal: 99,
        ..config("bad", k8s::Signal::RuntimeDefault)
    };
    let e = create(&env, &pod, bad).expect_err("an unknown signal");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("stop_signal"), "{e:?}");
    assert_eq!(
        env.d.crictl(&["ps", "-a", "-q"]).ok(),
        before,
        "nothing made"
    );
}
