//! CRI messages <-> runtime types.

pub mod image;
