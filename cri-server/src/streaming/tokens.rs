//! Single-use tokens for streaming requests: an Exec, Attach or
//! PortForward RPC stores its validated request here and returns a URL
//! naming the token; the streaming server takes it (once) when the client
//! connects. Tokens expire, and only so many may wait at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Run a command in a container.
    Exec(ExecTarget),
    /// Attach to a container's stdio.
    Attach(AttachTarget),
    /// Forward ports of a pod.
    PortForward(PortForwardTarget),
}

impl Pending {
    /// The URL path segment of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

/// A validated Exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    /// The container.
    pub container_id: String,
    /// The command.
    pub cmd: Vec<String>,
    /// Run on a pty.
    pub tty: bool,
    /// Streams the client asked for.
    pub stdin: bool,
    /// Streams the client asked for.
    pub stdout: bool,
    /// Streams the client asked for.
    pub stderr: bool,
}

/// A validated Attach request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachTarget {
    /// The container.
    pub container_id: String,
    /// The container has a terminal.
    pub tty: bool,
    /// Streams the client asked for.
    pub stdin: bool,
    /// Streams the client asked for.
    pub stdout: bool,
    /// Streams the client asked for.
    pub stderr: bool,
}

/// A validated PortForward request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardTarget {
    /// The pod.
    pub pod_id: String,
    /// The pod's network namespace file (`None`: the host's network).
    pub netns: Option<std::path::PathBuf>,
    /// Ports the RPC named (informational; the client picks per stream).
    pub ports: Vec<u16>,
}

/// The token store is full.
#[derive(Debug, thiserror::Error)]
#[error("too many streaming requests in flight ({0}); try again later")]
pub struct Full(pub usize);

/// The store.
#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    cap: usize,
    map: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Tokens {
    /// A store whose tokens live `ttl` and of which at most `cap` wait.
    pub fn new(ttl: Duration, cap: usize) -> Tokens {
        Tokens {
            ttl,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `p`; returns its token.
    pub fn insert(&self, p: Pending) -> Result<String, Full> {
        let token = random_token();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (born, _)| now.duration_since(*born) < self.ttl);
        if map.len() >= self.cap {
            return Err(Full(self.cap));
        }
        map.insert(token.clone(), (now, p));
        Ok(token)
    }

    /// Takes the request of `token` if it is of `kind` and not expired.
    /// A token is consumed by its first use, whatever the outcome.
    pub fn take(&self, kind: &str, token: &str) -> Option<Pending> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (born, p) = map.remove(token)?;
        (born.elapsed() < self.ttl && p.kind() == kind).then_some(p)
    }
}

/// 32 random bytes, URL-safe (hex).
fn random_token() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // /dev/urandom missing is a broken host; fall back to time and a
        // counter, still unique, though guessable.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{t:x}{n:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Pending {
        Pending::Exec(ExecTarget {
            container_id: "c1".into(),
            cmd: vec!["sh".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
    }

    #[test]
    fn single_use() {
        let t = Tokens::new(Duration::from_secs(60), 10);
        let token = t.insert(exec()).expect("room");
        assert_eq!(token.len(), 64);
        assert_eq!(t.take("exec", &token), Some(exec()));
        assert_eq!(t.take("exec", &token), None, "used");
        assert_eq!(t.take("exec", "nope"), None, "unknown");
    }

    #[test]
    fn wrong_kind_consumes_and_refuses() {
        let t = Tokens::new(Duration::from_secs(60), 10);
        let token = t.insert(exec()).expect("room");
        assert_eq!(t.take("attach", &token), None);
        assert_eq!(t.take("exec", &token), None);
    }

    #[test]
    fn expiry_and_cap() {
        let t = Tokens::new(Duration::from_millis(30), 2);
        let a = t.insert(exec()).expect("room");
        t.insert(exec()).expect("room");
        assert!(t.insert(exec()).is_err(), "full");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(t.take("exec", &a), None, "expired");
        t.insert(exec()).expect("expired ones make room");
    }
}
