//! Single-use tokens for streaming requests: an Exec, Attach or
//! PortForward RPC stores its validated request here and returns a URL
//! naming the token; the streaming server takes it (once) when the client
//! connects. Tokens expire, and only so many may wait at once.
//!
//! Unredeemed URLs cannot lock anyone out: a full store evicts the oldest
//! waiting token (expired ones go first) instead of refusing, and each
//! container (Exec and Attach together) and each pod (PortForward) may
//! have only so many waiting, its own oldest evicted past that, so one
//! container's flood evicts only its own tokens. A URL is redeemed within
//! milliseconds of the RPC by kubelet and crictl, so a token is lost only
//! to an RPC flood on its own container, or to more than the whole store
//! of requests between its issue and its use. (kubelet's streaming
//! library, which containerd and CRI-O use, refuses when 1000 wait.)
//!
//! A token is made only from the random source: when it fails, the RPC
//! fails, never falling back to a guessable value.

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

impl Pending {
    /// What the per-target limit counts this request against.
    fn target(&self) -> Target<'_> {
        match self {
            Pending::Exec(t) => Target::Container(&t.container_id),
            Pending::Attach(t) => Target::Container(&t.container_id),
            Pending::PortForward(t) => Target::Pod(&t.pod_id),
        }
    }
}

/// A container or a pod, whose waiting tokens are limited together.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Container(&'a str),
    Pod(&'a str),
}

/// Where the bytes of tokens come from.
pub trait RandomSource: Send + Sync + std::fmt::Debug {
    /// Fills `buf` with unpredictable bytes, or says why it cannot.
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The kernel's random source, `/dev/urandom`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::Read as _;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(buf))
            .map_err(|e| std::io::Error::new(e.kind(), format!("reading /dev/urandom: {e}")))
    }
}

/// No token could be made: the random source failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make a streaming token: the random source failed ({0}); \
     no URL is issued rather than a guessable one"
)]
pub struct NoRandomness(#[source] pub std::io::Error);

impl From<NoRandomness> for tonic::Status {
    /// Unavailable: the host's random source failing (for one, no file
    /// descriptor left to open it) is a condition of the node, which may
    /// pass; the request itself was fine.
    fn from(e: NoRandomness) -> tonic::Status {
        tonic::Status::unavailable(e.to_string())
    }
}

/// How long tokens live and how many may wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A token older than this is refused.
    pub ttl: Duration,
    /// Tokens waiting at once, in all.
    pub cap: usize,
    /// Tokens waiting at once for one container, or one pod.
    pub per_target: usize,
}

#[derive(Debug)]
struct Entry {
    /// Insertion order: the smallest is the oldest.
    seq: u64,
    born: Instant,
    pending: Pending,
}

#[derive(Debug, Default)]
struct Waiting {
    next_seq: u64,
    map: HashMap<String, Entry>,
}

impl Waiting {
    /// Removes the oldest entry that `pick` accepts; whether one was.
    fn evict_oldest(&mut self, pick: impl Fn(&Entry) -> bool) -> bool {
        let oldest = self
            .map
            .iter()
            .filter(|(_, e)| pick(e))
            .min_by_key(|(_, e)| e.seq)
            .map(|(token, _)| token.clone());
        oldest.is_some_and(|token| self.map.remove(&token).is_some())
    }
}

/// The store.
#[derive(Debug)]
pub struct Tokens {
    limits: Limits,
    random: Box<dyn RandomSource>,
    waiting: Mutex<Waiting>,
}

impl Tokens {
    /// A store within `limits` whose tokens come from `random`.
    pub fn new(limits: Limits, random: Box<dyn RandomSource>) -> Tokens {
        Tokens {
            limits,
            random,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Stores `p`; returns its token.
    pub fn insert(&self, p: Pending) -> Result<String, NoRandomness> {
        self.insert_at(p, Instant::now())
    }

    /// Stores `p` as of `now`; returns its token. Never refuses for want
    /// of room: expired tokens go, then the oldest of `p`'s container or
    /// pod past its limit, then the oldest of all past the cap.
    pub fn insert_at(&self, p: Pending, now: Instant) -> Result<String, NoRandomness> {
        let token = self.random_token()?;
        let Limits {
            ttl,
            cap,
            per_target,
        } = self.limits;
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.map.retain(|_, e| now.duration_since(e.born) < ttl);
        let target = p.target();
        let same = w
            .map
            .values()
            .filter(|e| e.pending.target() == target)
            .count();
        if same >= per_target.max(1) && w.evict_oldest(|e| e.pending.target() == target) {
            tracing::debug!(
                ?target,
                "streaming token evicted: too many waiting for one target"
            );
        }
        if w.map.len() >= cap.max(1) && w.evict_oldest(|_| true) {
            tracing::debug!("streaming token evicted: too many waiting");
        }
        let seq = w.next_seq;
        w.next_seq += 1;
        w.map.insert(
            token.clone(),
            Entry {
                seq,
                born: now,
                pending: p,
            },
        );
        Ok(token)
    }

    /// Takes the request of `token` if it is of `kind` and not expired.
    /// A token is consumed by its first use, whatever the outcome.
    pub fn take(&self, kind: &str, token: &str) -> Option<Pending> {
        self.take_at(kind, token, Instant::now())
    }

    /// [`Self::take`] as of `now`.
    pub fn take_at(&self, kind: &str, token: &str, now: Instant) -> Option<Pending> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let e = w.map.remove(token)?;
        (now.duration_since(e.born) < self.limits.ttl && e.pending.kind() == kind)
            .then_some(e.pending)
    }

    /// 32 bytes of the random source, URL-safe (hex).
    fn random_token(&self) -> Result<String, NoRandomness> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).map_err(NoRandomness)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts up from a seed: distinct tokens, known bytes.
    #[derive(Debug, Default)]
    struct Counter(std::sync::atomic::AtomicU8);

    impl RandomSource for Counter {
        fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            buf.fill(n);
            Ok(())
        }
    }

    /// A source that has failed.
    #[derive(Debug)]
    struct Broken;

    impl RandomSource for Broken {
        fn fill(&self, _: &mut [u8]) -> std::io::Result<()> {
            Err(std::io::Error::other(
                "reading /dev/urandom: no such device",
            ))
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    fn store(cap: usize, per_target: usize) -> Tokens {
        let limits = Limits {
            ttl: TTL,
            cap,
            per_target,
        };
        Tokens::new(limits, Box::new(OsRandom))
    }

    fn exec_in(container: &str) -> Pending {
        Pending::Exec(ExecTarget {
            container_id: container.into(),
            cmd: vec!["sh".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
    }

    fn exec() -> Pending {
        exec_in("c1")
    }

    fn attach_to(container: &str) -> Pending {
        Pending::Attach(AttachTarget {
            container_id: container.into(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
    }

    fn forward(pod: &str) -> Pending {
        Pending::PortForward(PortForwardTarget {
            pod_id: pod.into(),
            netns: None,
            ports: vec![80],
        })
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn single_use() {
        let t = store(10, 10);
        let token = t.insert(exec()).expect("a token");
        assert_eq!(token.len(), 64);
        assert_eq!(t.take("exec", &token), Some(exec()));
        assert_eq!(t.take("exec", &token), None, "used");
        assert_eq!(t.take("exec", "nope"), None, "unknown");
    }

    #[test]
    fn wrong_kind_consumes_and_refuses() {
        let t = store(10, 10);
        let token = t.insert(exec()).expect("a token");
        assert_eq!(t.take("attach", &token), None);
        assert_eq!(t.take("exec", &token), None);
    }

    #[test]
    fn a_token_lives_its_ttl_and_no_longer() {
        let t = store(10, 10);
        let t0 = Instant::now();
        let a = t.insert_at(exec(), t0).expect("a token");
        let b = t.insert_at(exec(), t0).expect("a token");
        let just_before = t0 + TTL - Duration::from_millis(1);
        assert_eq!(t.take_at("exec", &a, just_before), Some(exec()));
        assert_eq!(t.take_at("exec", &b, t0 + TTL), None, "expired");
    }

    #[test]
    fn a_full_store_evicts_expired_tokens_first_then_the_oldest() {
        let t = store(3, 10);
        let t0 = Instant::now();
        let a = t.insert_at(exec_in("a"), t0).expect("a token");
        let b = t.insert_at(exec_in("b"), t0 + secs(10)).expect("a token");
        let c = t.insert_at(exec_in("c"), t0 + secs(20)).expect("a token");
        // At 65 s `a` has expired: its place is taken, b and c stay.
        let now = t0 + secs(65);
        let d = t.insert_at(exec_in("d"), now).expect("room made");
        // Full with live ones: the oldest, b, goes.
        let e = t.insert_at(exec_in("e"), now).expect("never refused");
        assert_eq!(t.take_at("exec", &a, now), None, "expired");
        assert_eq!(t.take_at("exec", &b, now), None, "evicted, the oldest");
        for (token, id) in [(&c, "c"), (&d, "d"), (&e, "e")] {
            assert_eq!(t.take_at("exec", token, now), Some(exec_in(id)), "{id}");
        }
    }

    #[test]
    fn unredeemed_urls_never_lock_others_out() {
        // 1000 unredeemed URLs, each for a container of its own, then
        // another user's request: it gets a working token.
        let t = store(1000, 10);
        let t0 = Instant::now();
        let flood: Vec<String> = (0..1000)
            .map(|i| {
                t.insert_at(exec_in(&format!("c{i}")), t0)
                    .expect("never refused")
            })
            .collect();
        let mine = t.insert_at(attach_to("mine"), t0).expect("not locked out");
        assert_eq!(t.take_at("attach", &mine, t0), Some(attach_to("mine")));
        // The oldest of the flood made the room; the rest still wait.
        assert_eq!(t.take_at("exec", &flood[0], t0), None);
        assert_eq!(t.take_at("exec", &flood[1], t0), Some(exec_in("c1")));
    }

    #[test]
    fn one_containers_flood_evicts_only_its_own_tokens() {
        let t = store(100, 3);
        let t0 = Instant::now();
        let other = t.insert_at(exec_in("quiet"), t0).expect("a token");
        let pod = t.insert_at(forward("flooder"), t0).expect("a token");
        // Exec and Attach on one container count together.
        let flood: Vec<String> = (0..10)
            .map(|i| {
                let p = if i % 2 == 0 {
                    exec_in("flooder")
                } else {
                    attach_to("flooder")
                };
                t.insert_at(p, t0).expect("never refused")
            })
            .collect();
        // The flooder keeps its newest three.
        let kept: Vec<bool> = flood
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let kind = if i % 2 == 0 { "exec" } else { "attach" };
                t.take_at(kind, token, t0).is_some()
            })
            .collect();
        let mut want = vec![false; 7];
        want.extend([true; 3]);
        assert_eq!(kept, want);
        // Another container, and a pod of the same name, were not touched.
        assert_eq!(t.take_at("exec", &other, t0), Some(exec_in("quiet")));
        assert_eq!(t.take_at("portforward", &pod, t0), Some(forward("flooder")));
    }

    #[test]
    fn a_pods_port_forward_tokens_are_limited_per_pod() {
        let t = store(100, 2);
        let t0 = Instant::now();
        let p: Vec<String> = (0..3)
            .map(|_| t.insert_at(forward("p"), t0).expect("a token"))
            .collect();
        let q = t.insert_at(forward("q"), t0).expect("a token");
        assert_eq!(t.take_at("portforward", &p[0], t0), None, "evicted");
        assert!(t.take_at("portforward", &p[1], t0).is_some());
        assert!(t.take_at("portforward", &p[2], t0).is_some());
        assert!(t.take_at("portforward", &q, t0).is_some());
    }

    #[test]
    fn tokens_are_the_random_sources_bytes() {
        let limits = Limits {
            ttl: TTL,
            cap: 10,
            per_target: 10,
        };
        let t = Tokens::new(limits, Box::new(Counter::default()));
        assert_eq!(t.insert(exec()).expect("a token"), "00".repeat(32));
        assert_eq!(t.insert(exec()).expect("a token"), "01".repeat(32));
    }

    #[test]
    fn a_failing_random_source_fails_the_request_and_stores_nothing() {
        let limits = Limits {
            ttl: TTL,
            cap: 10,
            per_target: 10,
        };
        let t = Tokens::new(limits, Box::new(Broken));
        let err = t.insert(exec()).expect_err("no guessable fallback");
        assert!(err.to_string().contains("/dev/urandom"), "{err}");
        assert!(t.waiting.lock().expect("lock").map.is_empty());
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status.message().contains("cannot make a streaming token")
                && status.message().contains("random source failed"),
            "{status:?}"
        );
    }
}
