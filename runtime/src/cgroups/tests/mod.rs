//! Unit tests against fake hierarchies in a tempdir (no root needed).

mod devices;
mod fake;
mod parse;
