//! Restart reconciliation through the fake backend.

use super::*;
use crate::container::fake::{Call, CallKind, When};
use crate::ErrorKind;

#[tokio::test]
async fn recover_keeps_running_ones_watched_and_takes_exits_from_the_shim() {
    let mut h = harness();
    h.given(
        "run",
        ContainerState::Running,
        Some(FakeContainer::running(5)),
    );
    h.given(
        "new",
        ContainerState::Created,
        Some(FakeContainer::created(6)),
    );
    h.given("done", ContainerState::Exited, None);
    let mut ended = FakeContainer::running(7);
    ended.shim_alive = false;
    h.given("ended", ContainerState::Running, Some(ended));
    h.fake.exit("ended", 2);
    h.containers.recover().await.expect("recover");

    assert_eq!(h.record("run").expect("run").state, ContainerState::Running);
    assert_eq!(h.record("new").expect("new").state, ContainerState::Created);
    let ended = h.record("ended").expect("ended");
    assert_eq!((ended.state, ended.exit_code), (ContainerState::Exited, 2));
    assert!(
        !h.fake.calls().contains(&Call::State { id: "done".into() }),
        "an exited record asks no shim"
    );
    assert!(h.fake.calls_of(CallKind::Delete).is_empty());
    assert_eq!(h.events(), [(EventKind::Stopped, "ended".to_string())]);

    // Watched again: its exit is recorded when it happens.
    h.fake.exit("run", 0);
    h.until("run", |r| {
        r.is_some_and(|r| r.state == ContainerState::Exited)
    })
    .await;
    assert_eq!(h.record("run").expect("run").reason, "Completed");
    // The event is sent once the record is written: wait for it.
    assert_eq!(
        h.next_event().await,
        (EventKind::Stopped, "run".to_string())
    );
    assert_eq!(h.events(), [], "one event per exit");
}

#[tokio::test]
async fn recover_with_the_state_query_failing_marks_the_container_exited() {
    let mut h = harness();
    h.given(
        "lost",
        ContainerState::Running,
        Some(FakeContainer::running(5)),
    );
    h.given(
        "ok",
        ContainerState::Running,
        Some(FakeContainer::running(6)),
    );
    h.fake.fail(
        CallKind::State,
        When::ForId("lost".into()),
        ErrorKind::Internal,
    );
    h.containers.recover().await.expect("recover goes on");
    let lost = h.record("lost").expect("lost");
    assert_eq!((lost.state, lost.exit_code), (ContainerState::Exited, 255));
    assert_eq!(lost.reason, "Unknown");
    assert!(lost.message.contains("injected State"), "{}", lost.message);
    assert_eq!(h.record("ok").expect("ok").state, ContainerState::Running);
    assert_eq!(h.events(), [(EventKind::Stopped, "lost".to_string())]);

    h.containers.remove("lost").await.expect("removable");
    assert!(h.record("lost").is_none());
    assert!(h.fake.container("lost").is_none());
}

#[tokio::test]
async fn recover_deletes_what_is_on_disk_without_a_record() {
    let h = harness();
    h.given(
        "kept",
        ContainerState::Created,
        Some(FakeContainer::created(5)),
    );
    h.fake.insert("half", FakeContainer::created(6));
    h.fake.insert("stuck", FakeContainer::created(7));
    h.fake.fail(
        CallKind::Delete,
        When::ForId("stuck".into()),
        ErrorKind::Internal,
    );
    h.containers.recover().await.expect("recover");
    assert_eq!(
        h.fake.calls_of(CallKind::Delete),
        [
            Call::Delete { id: "half".into() },
            Call::Delete { id: "stuck".into() }
        ]
    );
    assert!(h.fake.container("half").is_none());
    assert!(h.fake.container("kept").is_some());
    assert!(h.record("half").is_none() && h.record("stuck").is_none());

    // The next restart tries the one that failed again.
    h.containers.recover().await.expect("recover");
    assert!(h.fake.container("stuck").is_some(), "still failing");
    assert_eq!(h.fake.calls_of(CallKind::Delete).len(), 3);
}
