//! Content digests (`algorithm:hex`), as used for blobs, layers and image ids.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use super::Error;

/// A hash algorithm the runtime can verify content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the registered default of the OCI image spec.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in the `algorithm:hex` form.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:<64 lowercase hex>`.
///
/// Only algorithms the runtime can verify ([`Algorithm`]) are accepted, and
/// the hex part must be lowercase and of the algorithm's exact length, so two
/// equal digests always have equal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// The whole `algorithm:hex` text (ordered as (algorithm, hex) is).
    text: String,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Digest, Error> {
        let invalid = |reason: &str| Error::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected algorithm:hex"))?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(invalid("empty algorithm")),
            _ => return Err(invalid("unsupported algorithm (want sha256 or sha512)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(Error::InvalidDigest {
                digest: s.to_string(),
                reason: format!(
                    "{algorithm} needs {} hex characters, got {}",
                    algorithm.hex_len(),
                    hex.len()
                ),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hex part must be lowercase hexadecimal"));
        }
        Ok(Digest {
            algorithm,
            text: s.to_string(),
        })
    }

    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::from_sha256(sha2::Sha256::digest(data).into())
    }

    /// A SHA-256 digest from its raw 32 bytes (for example a finished hasher).
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            text: format!("{}:{}", Algorithm::Sha256, hex::encode(bytes)),
        }
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding of the hash.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_sha256() {
        let text = format!("sha256:{EMPTY_SHA256}");
        let d = Digest::parse(&text).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), EMPTY_SHA256);
        assert_eq!(d.to_string(), text);
        assert_eq!(text.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn orders_by_algorithm_then_hex() {
        let a = Digest::parse(&format!("sha256:{}", "f".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let c = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        let mut all = vec![b.clone(), a.clone(), c.clone()];
        all.sort();
        assert_eq!(all, vec![c, a, b]);
    }

    #[test]
    fn parses_sha512() {
        let text = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(Digest::parse(&text).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn computes_sha256() {
        assert_eq!(Digest::sha256_of(b"").hex(), EMPTY_SHA256);
    }

    #[test]
    fn rejects_bad_digests_with_reason() {
        let upper = format!("sha256:{}", EMPTY_SHA256.to_uppercase());
        let short = format!("sha256:{}", &EMPTY_SHA256[1..]);
        let sha512_short = format!("sha512:{EMPTY_SHA256}");
        let nonhex = format!("sha256:{}g", &EMPTY_SHA256[1..]);
        let cases: &[(&str, &str)] = &[
            ("", "expected algorithm:hex"),
            ("sha256", "expected algorithm:hex"),
            (":abc", "empty algorithm"),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "unsupported algorithm",
            ),
            (&upper, "lowercase hexadecimal"),
            (&short, "needs 64 hex characters, got 63"),
            (&sha512_short, "needs 128 hex characters, got 64"),
            (&nonhex, "lowercase hexadecimal"),
        ];
        for (input, reason) in cases {
            let err = Digest::parse(input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert!(msg.contains(input), "{input:?}: {msg}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let d = Digest::sha256_of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
    }
}
