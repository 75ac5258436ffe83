//! CRI messages <-> runtime types.

pub mod image;
pub mod pod;
