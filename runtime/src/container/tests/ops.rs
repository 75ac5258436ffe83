//! Exec, log reopening and the running check through the fake backend.

use super::*;
use crate::container::fake::{Call, CallKind, When};
use crate::container::ExecRequest;
use crate::ErrorKind;

fn exec(args: &[&str]) -> ExecRequest {
    ExecRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..ExecRequest::default()
    }
}

#[tokio::test]
async fn exec_and_reopen_log_go_to_the_shim_only_when_running() {
    let h = harness();
    h.given(
        "new",
        ContainerState::Created,
        Some(FakeContainer::created(5)),
    );
    let e = h
        .containers
        .exec_sync("new", exec(&["ls"]))
        .await
        .expect_err("not running");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = h
        .containers
        .reopen_log("new")
        .await
        .expect_err("not running");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert!(h.fake.calls().is_empty(), "refused from the record");

    h.given(
        "run",
        ContainerState::Running,
        Some(FakeContainer::running(6)),
    );
    let out = h
        .containers
        .exec_sync("run", exec(&["echo", "hi"]))
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"echo hi");
    h.containers.reopen_log("run").await.expect("reopen");
    assert_eq!(
        h.fake.calls(),
        [
            Call::ExecSync {
                id: "run".into(),
                args: vec!["echo".into(), "hi".into()],
            },
            Call::ReopenLog { id: "run".into() },
        ]
    );

    h.fake
        .fail(CallKind::ReopenLog, When::Nth(2), ErrorKind::Internal);
    let e = h.containers.reopen_log("run").await.expect_err("injected");
    assert_eq!(e.kind(), ErrorKind::Internal);
}

#[tokio::test]
async fn ensure_running_asks_the_shim() {
    let h = harness();
    h.given(
        "run",
        ContainerState::Running,
        Some(FakeContainer::running(6)),
    );
    h.containers.ensure_running("run").await.expect("running");
    // The record still says running; the shim knows better.
    h.fake.exit("run", 0);
    let e = h
        .containers
        .ensure_running("run")
        .await
        .expect_err("exited");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = h
        .containers
        .ensure_running("gone")
        .await
        .expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
