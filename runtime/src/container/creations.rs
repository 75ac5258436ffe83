//! Creations whose shim has not answered yet.
//!
//! [`super::ContainerRuntime::create`] returns once the bundle is written;
//! the shim's answer arrives later. Every later call for the container
//! [`Creations::settle`]s first, so it finds the container as its shim left
//! it; a failed creation's error stays here for the start to return, until
//! the container is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::Error;
use crate::ErrorKind;

/// How a shim's creation of a container ended: the error's kind and text.
type Outcome = Result<(), (ErrorKind, String)>;

/// The creations under way, or failed, by container id.
#[derive(Debug, Clone, Default)]
pub(super) struct Creations {
    pending: Arc<Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>>,
}

/// Where the creating task gives its shim's answer.
pub(super) struct Answer(watch::Sender<Option<Outcome>>);

impl Answer {
    /// The shim created the container, or said why not.
    pub(super) fn send(self, outcome: Result<(), &Error>) {
        let outcome = outcome.map_err(|e| (e.kind(), e.to_string()));
        // Nobody waiting is fine.
        let _ = self.0.send(Some(outcome));
    }
}

impl Creations {
    fn map(&self) -> MutexGuard<'_, HashMap<String, watch::Receiver<Option<Outcome>>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the creation of `id`, under way from now on.
    pub(super) fn begin(&self, id: &str) -> Answer {
        let (answer, answered) = watch::channel(None);
        self.map().insert(id.to_string(), answered);
        Answer(answer)
    }

    /// Waits until the shim of a creation of `id` still under way has
    /// answered; returns its error if it could not create the container.
    pub(super) async fn settle(&self, id: &str) -> Option<Error> {
        let mut answered = self.map().get(id).cloned()?;
        let outcome = match answered.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            // The creating task is gone (the runtime shuts down).
            Err(_) => None,
        };
        match outcome {
            Some(Err((kind, message))) => Some(Error::said(
                id,
                kind,
                format!("creating the container: {message}"),
            )),
            _ => {
                self.forget(id);
                None
            }
        }
    }

    /// Drops what is kept of the creation of `id` (the container is gone).
    pub(super) fn forget(&self, id: &str) {
        self.map().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_is_kept_for_every_caller_a_success_is_forgotten() {
        let c = Creations::default();
        assert!(c.settle("none").await.is_none(), "nothing under way");
        let failed = c.begin("a");
        let ok = c.begin("b");
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.settle("a").await })
        };
        failed.send(Err(&Error::said(
            "a",
            ErrorKind::InvalidArgument,
            "no such dir".into(),
        )));
        let e = waiter.await.unwrap().expect("the shim's error");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("creating the container"), "{e}");
        assert!(c.settle("a").await.is_some(), "kept until deleted");
        c.forget("a");
        assert!(c.settle("a").await.is_none());
        ok.send(Ok(()));
        assert!(c.settle("b").await.is_none());
        assert!(c.map().is_empty(), "a success is not kept");
    }
}
