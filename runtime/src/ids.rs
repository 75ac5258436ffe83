//! The ids of what the runtime keeps: [`ContainerId`], [`SandboxId`] and
//! [`ImageId`]. A client's string becomes one once, where it is checked
//! (its `parse`) or found (a store's `resolve`); from there on the type
//! says which kind of object it names. On disk each is the plain string it
//! always was (`serde(transparent)`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::image::Digest;
use crate::ErrorKind;

/// Errors of id parsing and generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The string cannot be an id of this kind.
    #[error("invalid {kind} id {id:?}: {reason}")]
    Invalid {
        /// "container" or "pod sandbox".
        kind: &'static str,
        /// The string as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No random bytes for a new id.
    #[error("cannot read {path} for a new id: {source}")]
    Random {
        /// The random source.
        path: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::InvalidArgument,
            Error::Random { .. } => ErrorKind::Internal,
        }
    }
}

/// The kernel's random source.
const URANDOM: &str = "/dev/urandom";

/// 64 random lowercase hex characters.
fn random_hex() -> Result<String, Error> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open(URANDOM)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| Error::Random {
            path: URANDOM,
            source,
        })?;
    Ok(hex::encode(bytes))
}

/// Why `id` cannot name an object (it becomes a directory name), if it
/// cannot.
fn unfit(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > 128 {
        return Some("must have 1 to 128 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !id.chars().all(allowed) || id.starts_with('.') {
        return Some("only letters, digits, '-', '_' and '.' (not leading) are allowed");
    }
    None
}

macro_rules! string_id {
    ($(#[doc = $doc:literal])* $name:ident, $kind:literal) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks that `id` can be one (1 to 128 of letters, digits,
            /// '-', '_' and '.', not leading: a directory name).
            pub fn parse(id: &str) -> Result<$name, Error> {
                match unfit(id) {
                    None => Ok($name(id.to_string())),
                    Some(reason) => Err(Error::Invalid {
                        kind: $kind,
                        id: id.to_string(),
                        reason,
                    }),
                }
            }

            /// A fresh id: 64 random hex characters.
            pub fn random() -> Result<$name, Error> {
                Ok($name(random_hex()?))
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// A container's full id (a store's `resolve` turns a prefix into one).
    ContainerId,
    "container"
);

impl ContainerId {
    /// An id found in the runtime's own records (checked when it was made).
    pub(crate) fn recorded(id: String) -> ContainerId {
        ContainerId(id)
    }
}

string_id!(
    /// A pod sandbox's full id (a store's `resolve` turns a prefix into one).
    SandboxId,
    "pod sandbox"
);

/// An image's id: the digest of its config blob, as CRI calls it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Digest);

impl ImageId {
    /// Parses `sha256:<hex>` (or another supported algorithm).
    pub fn parse(id: &str) -> Result<ImageId, crate::image::Error> {
        Ok(ImageId(Digest::parse(id)?))
    }

    /// The config digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The id's text, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<Digest> for ImageId {
    fn from(d: Digest) -> ImageId {
        ImageId(d)
    }
}

impl Deref for ImageId {
    type Target = Digest;
    fn deref(&self) -> &Digest {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq<Digest> for ImageId {
    fn eq(&self, other: &Digest) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_once_and_serialised_as_plain_strings() {
        let id = ContainerId::parse("abc-1.x").expect("fit");
        assert_eq!(id.to_string(), "abc-1.x");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"abc-1.x\"");
        let back: ContainerId = serde_json::from_str("\"abc-1.x\"").expect("back");
        assert_eq!(back, id);
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            let e = SandboxId::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains("pod sandbox id"), "{e}");
        }
    }

    #[test]
    fn random_ids_are_64_hex_and_differ() {
        let a = SandboxId::random().expect("random");
        let b = SandboxId::random().expect("random");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(SandboxId::parse(&a).is_ok());
    }

    #[test]
    fn an_image_id_is_its_digest_text() {
        let d = Digest::sha256_of(b"config");
        let id = ImageId::from(d.clone());
        assert_eq!(id.as_str(), d.to_string());
        assert_eq!(
            serde_json::to_string(&id).expect("json"),
            format!("\"{d}\"")
        );
        let back: ImageId = serde_json::from_str(&format!("\"{d}\"")).expect("back");
        assert_eq!(back, id);
        assert!(serde_json::from_str::<ImageId>("\"sha256:short\"").is_err());
        assert_eq!(ImageId::parse(d.as_str()).expect("parse"), id);
    }

    /// Records as the daemon wrote them before these types existed (ids
    /// as plain strings) still read, keep their keys, and write back the
    /// same strings.
    #[test]
    fn records_written_before_the_id_types_still_read() {
        use std::sync::Arc;

        use crate::container::{ContainerRecord, ContainerState};
        use crate::image::ImageRecord;
        use crate::sandbox::Pod;
        use crate::store::{Change, Lookup, MetaStore, Records, Table};

        let c = "c0ffee".repeat(10) + "c0ff";
        let p = "bead".repeat(16);
        let image = format!("sha256:{}", "ab".repeat(32));
        let container_json = format!(
            r#"{{"id":"{c}","pod_id":"{p}","name":"web","attempt":0,"image":"busybox",
            "image_id":"{image}","image_ref":"{image}","chain_ids":[],"stop_signal":null,
            "labels":{{}},"annotations":{{}},"log_path":"","log_file":null,"state":"running",
            "created_at_ns":1,"started_at_ns":2,"finished_at_ns":0,"exit_code":0,"reason":"",
            "message":"","pid":42,"pod":{{"pod_id":"{p}"}},"config":{{}}}}"#
        );
        let pod_json = format!(
            r#"{{"id":"{p}","config":{{"name":"web","namespace":"default","uid":"u1"}},
            "state":"Ready","created_at":1,"dir":"/run/corten/pods/{p}"}}"#
        );
        let image_json = format!(
            r#"{{"id":"{image}","repo_tags":["docker.io/library/busybox:latest"],
            "repo_digests":[],"size":1,"manifest_digest":"{image}","config":{{}},
            "layers":[],"pulled_at_ns":0}}"#
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MetaStore::open(&tmp.path().join("meta.redb")).expect("store"));
        for (table, key, json) in [
            (Table::Containers, &c, &container_json),
            (Table::Pods, &p, &pod_json),
            (Table::Images, &image, &image_json),
        ] {
            let put = Change::Put(key.clone(), json.as_bytes().to_vec());
            store.apply(table, vec![put]).expect("old record");
        }

        let containers = Records::<ContainerRecord>::load(store.clone()).expect("containers");
        assert_eq!(containers.resolve("c0f"), Lookup::Found(c.clone()));
        let record = containers.get(&c).expect("container");
        assert_eq!(record.id, c);
        assert_eq!(record.pod_id, p);
        assert_eq!(record.pod.pod_id, p);
        assert_eq!(record.image_id.as_str(), image);
        assert_eq!(record.state, ContainerState::Running);
        let back = serde_json::to_value(&record).expect("encode");
        assert_eq!(back["id"], c.as_str());
        assert_eq!(back["pod_id"], p.as_str());
        assert_eq!(back["image_id"], image.as_str());

        let pods = Records::<Pod>::load(store.clone()).expect("pods");
        let pod = pods.get(&p).expect("pod");
        assert_eq!(pod.id, p);
        assert_eq!(
            serde_json::to_value(&pod).expect("encode")["id"],
            p.as_str()
        );

        let images = Records::<ImageRecord>::load(store).expect("images");
        let found = images.with(|v| {
            v.by_alias("docker.io/library/busybox:latest")
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>()
        });
        assert_eq!(found, [image]);
    }
}
