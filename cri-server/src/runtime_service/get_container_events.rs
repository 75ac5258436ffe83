//! `GetContainerEvents`: a stream of container lifecycle events, each with
//! the container's status (what kubelet's evented PLEG consumes).

use std::sync::Arc;

use corten_runtime::container::{ContainerEvent, EventKind};
use k8s_cri::v1::{ContainerEventResponse, ContainerEventType, GetEventsRequest};
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::pod_lookup::pod_status;
use super::ContainerEventStream;
use crate::convert::container::status;
use crate::service::Cri;

pub async fn get_container_events(
    cri: Arc<Cri>,
    _req: GetEventsRequest,
) -> Result<ContainerEventStream, Status> {
    let mut events = cri.containers.subscribe();
    let stream = async_stream(move |tx| async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "a container event subscriber fell behind");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if tx.send(Ok(response(&cri, &event))).await.is_err() {
                return; // The client went away.
            }
        }
    });
    Ok(stream)
}

fn response(cri: &Cri, e: &ContainerEvent) -> ContainerEventResponse {
    let kind = match e.kind {
        EventKind::Created => ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => ContainerEventType::ContainerDeletedEvent,
    };
    let containers_statuses = cri
        .containers
        .list(&corten_runtime::container::ContainerFilter {
            pod_id: Some(e.pod_id.clone()),
            ..Default::default()
        })
        .iter()
        .filter(|r| r.pod_id == e.pod_id)
        .map(status)
        .collect();
    ContainerEventResponse {
        container_id: e.container_id.clone(),
        container_event_type: kind as i32,
        created_at: e.at_ns,
        pod_sandbox_status: pod_status(cri, &e.pod_id),
        containers_statuses,
    }
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(body: F) -> ContainerEventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<ContainerEventResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
