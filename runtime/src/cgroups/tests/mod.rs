//! Unit tests against fake hierarchies in a tempdir (no root needed).

mod fake;
mod parse;
