//! Where to fetch an image from and as whom: mirrors, plain-HTTP
//! registries, extra CAs and credentials. CRI-independent.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::Error;

/// Registry access settings (the daemon's `[registry]` config section).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryConfig {
    /// Mirrors per registry host, tried in order before the registry itself.
    /// An entry is `host[:port]` or `http://host[:port]` / `https://host[:port]`.
    /// The key `*` gives the mirrors of every registry that has no entry.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registries (`host[:port]`, or `*` for every one not on loopback)
    /// whose mirrors are final: the registry itself is never contacted,
    /// only its mirrors.
    pub mirrors_final: Vec<String>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure: Vec<String>,
    /// PEM files of extra certificate authorities to trust.
    pub ca_files: Vec<PathBuf>,
    /// A docker-style `config.json` holding credentials per registry.
    pub auth_file: Option<PathBuf>,
}

/// Credentials for one pull. Never printed: `Debug` redacts them.
#[derive(Clone, PartialEq)]
pub enum Credentials {
    /// HTTP basic (also the decoded form of a docker `auth` field).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A registry bearer token, sent as it is.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                write!(f, "Basic({username:?}, <redacted>)")
            }
            Credentials::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Decodes a docker `auth` field: base64 of `user:password`.
    pub fn from_auth_field(auth: &str) -> Result<Credentials, Error> {
        let bad = |reason: &str| Error::BadCredentials {
            reason: reason.to_string(),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("the auth field is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("the auth field is not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| bad("the auth field is not user:password"))?;
        Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// Credentials for `host` from a docker-style config.json, if it has any.
    pub fn from_auth_file(path: &Path, host: &str) -> Result<Option<Credentials>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::AuthFile {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        };
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::AuthFile {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
            return Ok(None);
        };
        let wanted = docker_hosts(host);
        for (key, entry) in auths {
            if !wanted
                .iter()
                .any(|h| *h == strip_scheme(key).trim_end_matches("/v1/"))
            {
                continue;
            }
            if let Some(token) = entry.get("registrytoken").and_then(|t| t.as_str()) {
                return Ok(Some(Credentials::Bearer(token.to_string())));
            }
            if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
                return Credentials::from_auth_field(auth).map(Some);
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(|u| u.as_str()),
                entry.get("password").and_then(|p| p.as_str()),
            ) {
                return Ok(Some(Credentials::Basic {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
        }
        Ok(None)
    }
}

/// The names docker's config.json may use for a registry host.
fn docker_hosts(host: &str) -> Vec<&str> {
    if host == "docker.io" {
        vec![
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "index.docker.io/v1",
        ]
    } else {
        vec![host]
    }
}

fn strip_scheme(s: &str) -> &str {
    s.trim_start_matches("https://")
        .trim_start_matches("http://")
}

/// One place to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// How to speak to it.
    pub scheme: Scheme,
}

/// The transport of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS only.
    Https,
    /// Plain HTTP only.
    Http,
    /// TLS first, plain HTTP if the host does not speak TLS (loopback
    /// registries, as Docker does).
    HttpsThenHttp,
}

impl RegistryConfig {
    /// The endpoints for `registry`: its mirrors in order, then itself
    /// unless its mirrors are final (then none at all when it has none).
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .into_iter()
            .flatten()
            .map(|m| self.endpoint(m))
            .collect();
        if !self.mirrors_are_final(registry) {
            out.push(self.endpoint(registry));
        }
        out.dedup();
        out
    }

    /// Whether `registry` may only be reached through its mirrors. `*`
    /// names every registry off this machine: one on loopback never leaves
    /// it, so it stays reachable.
    pub fn mirrors_are_final(&self, registry: &str) -> bool {
        self.mirrors_final
            .iter()
            .any(|r| (r == "*" && !is_loopback(registry)) || strip_scheme(r) == registry)
    }

    fn endpoint(&self, entry: &str) -> Endpoint {
        let entry = entry.trim_end_matches('/');
        let (host, explicit) = if let Some(h) = entry.strip_prefix("http://") {
            (h, Some(Scheme::Http))
        } else if let Some(h) = entry.strip_prefix("https://") {
            (h, Some(Scheme::Https))
        } else {
            (entry, None)
        };
        let scheme = explicit.unwrap_or_else(|| {
            if self.insecure.iter().any(|i| strip_scheme(i) == host) {
                Scheme::Http
            } else if is_loopback(host) {
                Scheme::HttpsThenHttp
            } else {
                Scheme::Https
            }
        });
        Endpoint {
            host: host.to_string(),
            scheme,
        }
    }
}

/// `localhost`, 127.0.0.0/8 or ::1, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:443",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn mirrors_come_first_and_schemes_follow_the_rules() {
        let mut config = RegistryConfig::default();
        config.mirrors.insert(
            "docker.io".into(),
            vec![
                "http://127.0.0.1:5000".into(),
                "mirror.example:5000".into(),
                "127.0.0.1:6000".into(),
            ],
        );
        config.insecure.push("mirror.example:5000".into());
        let eps = config.endpoints("docker.io");
        let got: Vec<_> = eps.iter().map(|e| (e.host.as_str(), e.scheme)).collect();
        assert_eq!(
            got,
            vec![
                ("127.0.0.1:5000", Scheme::Http),
                ("mirror.example:5000", Scheme::Http),
                ("127.0.0.1:6000", Scheme::HttpsThenHttp),
                ("docker.io", Scheme::Https),
            ]
        );
        assert_eq!(config.endpoints("quay.io").len(), 1);
    }

    #[test]
    fn final_mirrors_never_fall_back_to_the_registry() {
        let mut config = RegistryConfig::default();
        config
            .mirrors
            .insert("docker.io".into(), vec!["http://127.0.0.1:5000".into()]);
        config.mirrors_final.push("docker.io".into());
        let hosts = |c: &RegistryConfig, r: &str| -> Vec<String> {
            c.endpoints(r).into_iter().map(|e| e.host).collect()
        };
        assert_eq!(hosts(&config, "docker.io"), ["127.0.0.1:5000"]);
        assert_eq!(hosts(&config, "quay.io"), ["quay.io"]);

        // `*`: every registry, mirrored by the `*` entry unless it has its own.
        config
            .mirrors
            .insert("*".into(), vec!["http://127.0.0.1:6000".into()]);
        config.mirrors_final = vec!["*".into()];
        assert_eq!(hosts(&config, "docker.io"), ["127.0.0.1:5000"]);
        assert_eq!(hosts(&config, "registry.k8s.io"), ["127.0.0.1:6000"]);
        config.mirrors.remove("*");
        assert!(hosts(&config, "registry.k8s.io").is_empty());
        assert_eq!(hosts(&config, "127.0.0.1:7000"), ["127.0.0.1:7000"]);
        config.mirrors_final.push("127.0.0.1:7000".into());
        assert!(hosts(&config, "127.0.0.1:7000").is_empty());
    }

    #[test]
    fn auth_field_and_file() {
        let c = Credentials::from_auth_field("dXNlcjpwYTpzcw==").expect("decodes");
        assert_eq!(
            c,
            Credentials::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            }
        );
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert!(Credentials::from_auth_field("!!").is_err());

        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
                "127.0.0.1:5000":{"username":"u","password":"p"},
                "tok.example":{"registrytoken":"t0k"}}}"#,
        )
        .expect("write");
        assert_eq!(
            Credentials::from_auth_file(&path, "docker.io").expect("ok"),
            Some(c)
        );
        assert_eq!(
            Credentials::from_auth_file(&path, "127.0.0.1:5000").expect("ok"),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            Credentials::from_auth_file(&path, "tok.example").expect("ok"),
            Some(Credentials::Bearer("t0k".into()))
        );
        assert_eq!(
            Credentials::from_auth_file(&path, "quay.io").expect("ok"),
            None
        );
        assert_eq!(
            Credentials::from_auth_file(&tmp.path().join("none"), "x").expect("ok"),
            None
        );
    }
}
