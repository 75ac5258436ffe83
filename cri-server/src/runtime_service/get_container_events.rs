//! `GetContainerEvents`: a stream of container lifecycle events, each with
//! the container's status (what kubelet's evented PLEG consumes).

use std::sync::Arc;

use corten_cri_api::v1::{ContainerEventResponse, ContainerEventType, GetEventsRequest};
use corten_runtime::container::{ContainerEvent, EventKind};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tonic::Status;

use super::pod_lookup::pod_status;
use super::ContainerEventStream;
use crate::convert::container::status;
use crate::service::Cri;

pub async fn get_container_events(
    cri: Arc<Cri>,
    _req: GetEventsRequest,
) -> Result<ContainerEventStream, Status> {
    let events = cri.runtime.containers().subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(forward(events, tx, move |e| response(&cri, e)));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Relays `events` to `tx` as `convert` makes them, until either side
/// ends. A subscriber that fell behind the broadcast backlog has lost
/// events: its stream then ends with an Aborted status naming how many,
/// never a silent gap, so the client (kubelet's evented PLEG relists on any
/// stream error) relists and subscribes again.
async fn forward<E: Clone, R>(
    mut events: broadcast::Receiver<E>,
    tx: mpsc::Sender<Result<R, Status>>,
    convert: impl Fn(&E) -> R,
) {
    loop {
        let item = match events.recv().await {
            Ok(e) => Ok(convert(&e)),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "a container event subscriber fell behind; ending its stream"
                );
                Err(lagged(n))
            }
            Err(RecvError::Closed) => return,
        };
        let end = item.is_err();
        if tx.send(item).await.is_err() || end {
            return; // The client went away, or was told it missed events.
        }
    }
}

/// The status ending the stream of a subscriber that missed `n` events.
fn lagged(n: u64) -> Status {
    Status::aborted(format!(
        "container events dropped: this subscriber fell {n} events behind; \
         relist containers and subscribe again"
    ))
}

fn response(cri: &Cri, e: &ContainerEvent) -> ContainerEventResponse {
    let kind = match e.kind {
        EventKind::Created => ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => ContainerEventType::ContainerDeletedEvent,
    };
    let containers_statuses = cri
        .runtime
        .containers()
        .list(&corten_runtime::container::ContainerFilter {
            pod_id: Some(e.pod_id.to_string()),
            ..Default::default()
        })
        .iter()
        .filter(|r| r.pod_id == e.pod_id)
        .map(status)
        .collect();
    ContainerEventResponse {
        container_id: e.container_id.to_string(),
        container_event_type: kind as i32,
        created_at: e.at_ns,
        pod_sandbox_status: pod_status(cri, &e.pod_id),
        containers_statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lagging_subscriber_gets_an_error_and_its_stream_ends() {
        let (events, rx) = broadcast::channel::<u32>(2);
        // Four sent into a backlog of two, before the relay reads any: the
        // first two are lost.
        for n in 0..4 {
            events.send(n).expect("a subscriber exists");
        }
        // Closed too, so that a relay skipping the gap would end, not hang.
        drop(events);
        let (tx, mut out) = mpsc::channel(16);
        let relay = tokio::spawn(forward(rx, tx, |n: &u32| n * 10));
        let first = out.recv().await.expect("an item");
        let status = first.expect_err("the gap is reported first");
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(
            status.message().contains("fell 2 events behind")
                && status.message().contains("relist"),
            "{status:?}"
        );
        // The stream ends there: nothing after the error.
        assert!(out.recv().await.is_none(), "stream ended");
        relay.await.expect("relay ends");
    }

    #[tokio::test]
    async fn events_in_the_backlog_are_relayed_in_order_until_the_source_closes() {
        let (events, rx) = broadcast::channel::<u32>(4);
        let (tx, mut out) = mpsc::channel(16);
        for n in 1..=3 {
            events.send(n).expect("a subscriber exists");
        }
        drop(events);
        forward(rx, tx, |n: &u32| n + 100).await;
        let mut got = Vec::new();
        while let Some(item) = out.recv().await {
            got.push(item.expect("no error"));
        }
        assert_eq!(got, [101, 102, 103]);
    }

    #[tokio::test]
    async fn lag_after_some_delivered_events_ends_the_stream_with_the_count() {
        let (events, rx) = broadcast::channel::<u32>(2);
        let (tx, mut out) = mpsc::channel(1);
        events.send(1).expect("a subscriber exists");
        let relay = tokio::spawn(forward(rx, tx, |n: &u32| *n));
        // The relay has handed over event 1 (the channel of one is full).
        assert_eq!(out.recv().await.map(|r| r.ok()), Some(Some(1)));
        // While nobody reads, five more arrive for a backlog of two.
        for n in 2..=6 {
            events.send(n).expect("a subscriber exists");
        }
        drop(events);
        let mut got = Vec::new();
        let mut end = None;
        while let Some(item) = out.recv().await {
            match item {
                Ok(n) => got.push(n),
                Err(status) => end = Some(status),
            }
        }
        relay.await.expect("relay ends");
        let status = end.expect("the stream ends with an error, not silently");
        assert_eq!(status.code(), tonic::Code::Aborted);
        // 2, 3 and 4 fell out of the backlog; 5 and 6, after the gap, are
        // not sent past the error.
        assert!(
            status.message().contains("fell 3 events behind"),
            "{status:?}"
        );
        assert_eq!(got, Vec::<u32>::new());
    }
}
