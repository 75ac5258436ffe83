//! CreateContainer racing StopPodSandbox (issue 12): the container either
//! lands before the stop and is stopped with the pod, or is refused; a
//! container of a stopped pod cannot be started; the pod is removable and
//! nothing of it is left.

mod container_env;

use container_env::Env;
use corten_cri_api::v1 as k8s;
use crictl_tests::cri;

const ROUNDS: usize = 8;

#[test]
fn a_creation_racing_a_pod_stop_is_stopped_with_it_or_refused() {
    let env = Env::new();
    let socket = env.d.socket().to_path_buf();
    let (mut landed, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("race{round}");
        let pod = env.pod(&name);
        let (created, stopped) = cri::block_on(async {
            let mut a = cri::runtime(&socket).await.expect("connect");
            let mut b = cri::runtime(&socket).await.expect("connect");
            let create = a.create_container(k8s::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cri::sleeper("c")),
                sandbox_config: None,
            });
            let stop = b.stop_pod_sandbox(k8s::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            });
            tokio::join!(create, stop)
        });
        stopped.expect("StopPodSandbox");
        match created {
            Ok(answer) => {
                landed += 1;
                let id = answer.into_inner().container_id;
                let err = cri::block_on(async {
                    let mut c = cri::runtime(&socket).await.expect("connect");
                    c.start_container(k8s::StartContainerRequest {
                        container_id: id.clone(),
                    })
                    .await
                })
                .expect_err("a container of a stopped pod does not start");
                assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
                assert!(err.message().contains("not ready"), "{err:?}");
                let state = env.state(&id);
                assert_ne!(state, "CONTAINER_RUNNING", "round {round}");
            }
            Err(status) => {
                refused += 1;
                assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
                assert!(status.message().contains("not ready"), "{status:?}");
            }
        }
        env.d.crictl(&["rmp", &pod]).ok();
        let left = env.d.crictl(&["ps", "-a", "-q"]).ok();
        assert!(left.trim().is_empty(), "round {round}: {left}");
    }
    println!("{ROUNDS} races: {landed} creations landed first and were stopped, {refused} refused");
    let bundles = std::fs::read_dir(env.d.dir().join("state/containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(bundles, 0);
}
