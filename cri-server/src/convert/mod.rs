//! CRI messages <-> runtime types.

pub mod container;
pub mod image;
pub mod metrics;
pub mod pod;
pub mod signal;
pub mod stats;
pub mod userns;
pub mod validate;

#[cfg(test)]
mod refusals;
