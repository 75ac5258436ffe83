//! Runtime errors to gRPC statuses, in one place.

use corten_runtime::ErrorKind;
use tonic::{Code, Status};

/// A runtime error on its way out of a handler.
///
/// The orphan rule wants a local type to convert from; handlers use `?` on
/// `corten_runtime::Result` and get the mapping below.
#[derive(Debug)]
pub struct CriError(pub corten_runtime::Error);

impl From<corten_runtime::Error> for CriError {
    fn from(e: corten_runtime::Error) -> Self {
        CriError(e)
    }
}

/// The gRPC code of each runtime error kind. Exhaustive on purpose: a new
/// kind does not compile until someone decides its code.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    }
}

impl From<CriError> for Status {
    fn from(CriError(e): CriError) -> Status {
        Status::new(code(e.kind()), message(&e))
    }
}

/// The message of `e` with its causes: each source the message does not
/// already spell out is appended, so the client learns why, however a
/// module words its errors.
pub fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The answer of an RPC whose issue has not built it yet.
pub fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented by corten yet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_keep_their_kind_and_message() {
        let err = corten_runtime::Error::from(corten_runtime::network::Error::NoConfig {
            dir: "/etc/cni/net.d".into(),
            skipped: vec![],
        });
        let status = Status::from(CriError::from(err));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("/etc/cni/net.d"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn the_message_names_every_cause_once() {
        // A runtime error whose message spells its cause out: not repeated.
        let err = corten_runtime::Error::from(corten_runtime::container::Error::Spawn {
            id: "c1".into(),
            action: "cannot start /x/corten-shim".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        let status = Status::from(CriError::from(err));
        assert_eq!(status.code(), Code::Internal);
        let m = status.message();
        assert!(m.contains("c1") && m.contains("/x/corten-shim"), "{m}");
        assert_eq!(m.matches("entity not found").count(), 1, "{m}");

        // One that does not: its cause is appended.
        #[derive(Debug, thiserror::Error)]
        #[error("opening the thing")]
        struct Terse(#[source] std::io::Error);
        let terse = Terse(std::io::Error::other("disk on fire"));
        assert_eq!(message(&terse), "opening the thing: disk on fire");
    }

    #[test]
    fn unimplemented_names_the_rpc() {
        let s = unimplemented("RunPodSandbox");
        assert_eq!(s.code(), Code::Unimplemented);
        assert!(s.message().contains("RunPodSandbox"));
    }
}
