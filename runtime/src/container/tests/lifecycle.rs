//! Start, stop and remove through the fake backend.

use std::time::Duration;

use super::*;
use crate::container::fake::{Call, CallKind, When};
use crate::shim::Status;
use crate::ErrorKind;

const ID: &str = "c1";

fn kill(signal: i32, all: bool) -> Call {
    Call::Kill {
        id: ID.into(),
        signal,
        all,
    }
}

#[tokio::test]
async fn start_runs_the_container_and_watches_for_its_exit() {
    let mut h = harness();
    h.given(ID, ContainerState::Created, Some(FakeContainer::created(5)));
    h.containers.start(ID).await.expect("start");
    let record = h.record(ID).expect("record");
    assert_eq!((record.state, record.pid), (ContainerState::Running, 5));
    assert_eq!(record.started_at_ns, 7, "the shim's start time");
    assert_eq!(h.events(), [(EventKind::Started, ID.to_string())]);

    h.fake.exit(ID, 3);
    h.until(ID, |r| r.is_some_and(|r| r.state == ContainerState::Exited))
        .await;
    let record = h.record(ID).expect("record");
    assert_eq!((record.exit_code, record.reason.as_str()), (3, "Error"));
    assert_eq!(h.next_event().await, (EventKind::Stopped, ID.to_string()));

    let again = h.containers.start(ID).await.expect_err("exited");
    assert_eq!(again.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(h.fake.calls_of(CallKind::Start).len(), 1, "not asked again");
}

#[tokio::test]
async fn start_failing_as_the_process_dies_records_its_exit_and_remove_works() {
    let mut h = harness();
    h.given(ID, ContainerState::Created, Some(FakeContainer::created(5)));
    // The command could not be executed: the process is gone before Start.
    h.fake.exit(ID, 127);
    let e = h.containers.start(ID).await.expect_err("start fails");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let record = h.record(ID).expect("record");
    assert_eq!(
        (record.state, record.exit_code),
        (ContainerState::Exited, 127)
    );
    assert!(record.message.contains("has exited"), "{}", record.message);
    assert_eq!(h.events(), [(EventKind::Stopped, ID.to_string())]);

    h.containers.remove(ID).await.expect("remove");
    assert!(h.record(ID).is_none());
    assert!(h.fake.container(ID).is_none(), "deleted");
    assert!(
        h.fake.calls_of(CallKind::Kill).is_empty(),
        "nothing to stop"
    );
    assert_eq!(h.events(), [(EventKind::Deleted, ID.to_string())]);
}

#[tokio::test]
async fn start_failing_with_no_exit_to_find_keeps_the_record_removable() {
    let mut h = harness();
    h.given(ID, ContainerState::Created, Some(FakeContainer::created(5)));
    h.fake
        .fail(CallKind::Start, When::Nth(1), ErrorKind::Internal);
    h.fake
        .fail(CallKind::Wait, When::Nth(1), ErrorKind::Internal);
    let e = h.containers.start(ID).await.expect_err("start fails");
    assert_eq!(e.kind(), ErrorKind::Internal);
    let record = h.record(ID).expect("record");
    assert_eq!(
        record.state,
        ContainerState::Created,
        "nothing known changed"
    );
    assert!(h.events().is_empty());

    h.containers.remove(ID).await.expect("remove");
    assert!(h.record(ID).is_none());
    assert_eq!(h.fake.calls_of(CallKind::Delete).len(), 1);
}

#[tokio::test]
async fn start_whose_state_query_fails_still_records_it_running_and_watched() {
    let mut h = harness();
    h.given(ID, ContainerState::Created, Some(FakeContainer::created(5)));
    h.fake
        .fail(CallKind::State, When::Nth(1), ErrorKind::Internal);
    // The shim did start it: the start succeeded, only its pid is unknown.
    h.containers.start(ID).await.expect("started");
    let record = h.record(ID).expect("record");
    assert_eq!(record.state, ContainerState::Running);
    assert!(record.started_at_ns > 0);
    assert_eq!(h.fake.container(ID).expect("fake").status, Status::Running);
    assert_eq!(h.events(), [(EventKind::Started, ID.to_string())]);
    // It is watched: its end is recorded when it comes.
    h.fake.exit(ID, 4);
    h.until(ID, |r| r.is_some_and(|r| r.state == ContainerState::Exited))
        .await;
    assert_eq!(h.record(ID).expect("record").exit_code, 4);
    h.containers.remove(ID).await.expect("remove");
    assert!(h.record(ID).is_none());
    assert!(h.fake.container(ID).is_none());
}

#[tokio::test]
async fn stop_kills_at_once_with_no_timeout() {
    let mut h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.containers.stop(ID, Duration::ZERO).await.expect("stop");
    assert_eq!(h.fake.calls_of(CallKind::Kill), [kill(9, true)]);
    let record = h.record(ID).expect("record");
    assert_eq!(
        (record.state, record.exit_code),
        (ContainerState::Exited, 137)
    );
    assert_eq!(h.events(), [(EventKind::Stopped, ID.to_string())]);

    // Stopped already, and unknown: both succeed without a shim call.
    h.containers.stop(ID, Duration::ZERO).await.expect("again");
    h.containers
        .stop("nope", Duration::ZERO)
        .await
        .expect("unknown");
    assert_eq!(h.fake.calls_of(CallKind::Kill).len(), 1);
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn stop_sends_the_stop_signal_then_sigkill_to_a_stubborn_container() {
    let h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.containers
        .stop(ID, Duration::from_secs(10))
        .await
        .expect("stop");
    assert_eq!(h.fake.calls_of(CallKind::Kill), [kill(15, false)]);
    assert_eq!(h.record(ID).expect("record").exit_code, 143);

    let h = harness();
    let stubborn = FakeContainer {
        ignores_term: true,
        ..FakeContainer::running(5)
    };
    h.given(ID, ContainerState::Running, Some(stubborn));
    h.containers
        .stop(ID, Duration::from_millis(50))
        .await
        .expect("stop");
    assert_eq!(
        h.fake.calls_of(CallKind::Kill),
        [kill(15, false), kill(9, true)]
    );
    assert_eq!(h.record(ID).expect("record").exit_code, 137);
}

#[tokio::test]
async fn stop_with_kill_and_wait_failing_records_an_unknown_exit() {
    let mut h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.fake
        .fail(CallKind::Kill, When::ForId(ID.into()), ErrorKind::Internal);
    h.fake
        .fail(CallKind::Wait, When::ForId(ID.into()), ErrorKind::Internal);
    h.containers.stop(ID, Duration::ZERO).await.expect("stop");
    let record = h.record(ID).expect("record");
    assert_eq!(
        (record.state, record.exit_code),
        (ContainerState::Exited, 255)
    );
    assert_eq!(record.reason, "Unknown");
    assert!(
        record.message.contains("injected Wait"),
        "{}",
        record.message
    );
    assert_eq!(h.events(), [(EventKind::Stopped, ID.to_string())]);

    h.containers.remove(ID).await.expect("remove");
    assert!(h.record(ID).is_none());
    assert_eq!(h.fake.calls_of(CallKind::Delete).len(), 1);
    assert_eq!(h.events(), [(EventKind::Deleted, ID.to_string())]);
}

#[tokio::test]
async fn stop_whose_wait_fails_otherwise_reports_it_and_a_retry_completes() {
    let mut h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.fake
        .fail(CallKind::Kill, When::Nth(1), ErrorKind::Internal);
    h.fake
        .fail(CallKind::Wait, When::Nth(1), ErrorKind::FailedPrecondition);
    let e = h
        .containers
        .stop(ID, Duration::ZERO)
        .await
        .expect_err("stop");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(h.record(ID).expect("record").state, ContainerState::Running);
    assert!(h.events().is_empty());

    h.containers.stop(ID, Duration::ZERO).await.expect("retry");
    assert_eq!(h.record(ID).expect("record").exit_code, 137);
    assert_eq!(h.events(), [(EventKind::Stopped, ID.to_string())]);
}

#[tokio::test]
async fn stop_after_the_shim_is_lost_records_the_end_it_was_given() {
    let h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.fake.lose_shim(ID);
    h.containers.stop(ID, Duration::ZERO).await.expect("stop");
    let record = h.record(ID).expect("record");
    assert_eq!(record.state, ContainerState::Exited);
    assert_eq!(record.reason, "ShimDied");
    assert!(
        record.message.contains("shim was gone"),
        "{}",
        record.message
    );
    h.containers.remove(ID).await.expect("remove");
    assert!(h.record(ID).is_none());
}

#[tokio::test]
async fn remove_with_delete_failing_keeps_the_record_and_a_retry_removes_it() {
    let mut h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.fake
        .fail(CallKind::Delete, When::Nth(1), ErrorKind::Internal);
    let e = h.containers.remove(ID).await.expect_err("delete fails");
    assert_eq!(e.kind(), ErrorKind::Internal);
    let record = h.record(ID).expect("still recorded");
    assert_eq!(record.state, ContainerState::Exited, "stopped on the way");
    assert_eq!(h.events(), [(EventKind::Stopped, ID.to_string())]);

    h.containers.remove(ID).await.expect("retry");
    assert!(h.record(ID).is_none());
    assert!(h.fake.container(ID).is_none());
    assert_eq!(h.fake.calls_of(CallKind::Kill).len(), 1, "stopped once");
    assert_eq!(h.fake.calls_of(CallKind::Delete).len(), 2);
    assert_eq!(h.events(), [(EventKind::Deleted, ID.to_string())]);

    h.containers.remove(ID).await.expect("removed already");
    assert_eq!(h.fake.calls_of(CallKind::Delete).len(), 2);
}

#[tokio::test]
async fn remove_whose_stop_fails_keeps_the_record_for_a_retry() {
    let h = harness();
    h.given(ID, ContainerState::Running, Some(FakeContainer::running(5)));
    h.fake
        .fail(CallKind::Kill, When::Nth(1), ErrorKind::Internal);
    h.fake
        .fail(CallKind::Wait, When::Nth(1), ErrorKind::NotFound);
    let e = h.containers.remove(ID).await.expect_err("stop fails");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(h.fake.calls_of(CallKind::Delete).is_empty(), "not deleted");
    assert_eq!(h.record(ID).expect("record").state, ContainerState::Running);
    h.containers.remove(ID).await.expect("retry");
    assert!(h.record(ID).is_none());
}

#[tokio::test]
async fn the_requested_stop_signal_wins_over_the_images() {
    let h = harness();
    let mut record = crate::container::record::sample(ID, "pod");
    record.state = ContainerState::Running;
    record.stop_signal = Some("SIGQUIT".into());
    record.config.stop_signal = Some("SIGUSR1".into());
    assert_eq!(record.stop_signal_in_effect(), Some("SIGUSR1"));
    h.containers.inner.records.put(record).expect("save");
    h.fake.insert(ID, FakeContainer::running(5));
    h.containers
        .stop(ID, Duration::from_secs(10))
        .await
        .expect("stop");
    assert_eq!(h.fake.calls_of(CallKind::Kill), [kill(10, false)]);
}
