//! The state both CRI services share.

use std::sync::Arc;

use crate::config::Config;

/// What every handler can reach.
#[derive(Debug)]
pub struct Cri {
    /// The effective configuration.
    pub config: Config,
}

/// The tonic service object: a cheap handle on [`Cri`], one for each of
/// `RuntimeService` and `ImageService`.
#[derive(Debug, Clone)]
pub struct CriService {
    pub(crate) state: Arc<Cri>,
}

impl CriService {
    /// Wraps the shared state.
    pub fn new(cri: Cri) -> Self {
        CriService {
            state: Arc::new(cri),
        }
    }
}
