//! SPDY/3.1, as much of it as Kubernetes streaming uses: the frame codec
//! ([`frame`]) and a server-side session ([`conn`]).

pub mod conn;
mod dictionary;
pub mod frame;

pub use conn::{Incoming, Session, StreamWriter};
