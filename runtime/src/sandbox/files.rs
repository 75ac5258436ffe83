//! The files every container of a pod shares: `/etc/hostname`,
//! `/etc/hosts` and `/etc/resolv.conf`, written once per pod under its
//! state directory and bind-mounted into each container.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::ErrorKind;

/// A pod's DNS settings (CRI DNSConfig).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnsConfig {
    /// Name server addresses.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// resolv.conf options (`ndots:5`, ...).
    pub options: Vec<String>,
}

/// Errors of the pod files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A value cannot go into the file (a newline, a server that is no address).
    #[error("pod {file}: invalid value {value:?}: {reason}")]
    Invalid {
        /// Which file.
        file: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Writing failed.
    #[error("pod files: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FilesError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FilesError::Invalid { .. } => ErrorKind::InvalidArgument,
            FilesError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Where the pod's files are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodFiles {
    /// `/etc/hostname` of the pod's containers.
    pub hostname: PathBuf,
    /// `/etc/hosts`.
    pub hosts: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
}

fn plain(file: &'static str, value: &str) -> Result<(), FilesError> {
    if value.is_empty() || value.contains(['\n', '\r', '\0']) || value.contains(char::is_whitespace)
    {
        return Err(FilesError::Invalid {
            file,
            value: value.to_string(),
            reason: "must be one word without whitespace",
        });
    }
    Ok(())
}

/// resolv.conf from the pod's DNS config, or the host's when it has none.
pub fn resolv_conf(dns: Option<&DnsConfig>, host: &str) -> Result<String, FilesError> {
    let Some(dns) =
        dns.filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    else {
        return Ok(host.to_string());
    };
    let mut out = String::new();
    for server in &dns.servers {
        if server.parse::<IpAddr>().is_err() {
            return Err(FilesError::Invalid {
                file: "resolv.conf",
                value: server.clone(),
                reason: "a name server must be an IP address",
            });
        }
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.searches.is_empty() {
        for s in &dns.searches {
            plain("resolv.conf", s)?;
        }
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        for o in &dns.options {
            plain("resolv.conf", o)?;
        }
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(out)
}

/// /etc/hosts: loopback names, and the pod's address under its hostname.
pub fn hosts(hostname: &str, ips: &[IpAddr]) -> Result<String, FilesError> {
    plain("hosts", hostname)?;
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    Ok(out)
}

/// Writes the three files into `dir` (atomically each) and says where.
pub fn write_pod_files(
    dir: &Path,
    hostname: &str,
    dns: Option<&DnsConfig>,
    ips: &[IpAddr],
) -> Result<PodFiles, FilesError> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = PodFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
    };
    plain("hostname", hostname)?;
    let contents = [
        (&files.hostname, format!("{hostname}\n")),
        (&files.hosts, hosts(hostname, ips)?),
        (&files.resolv_conf, resolv_conf(dns, &host_resolv)?),
    ];
    for (path, text) in contents {
        let io = |source| FilesError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config_or_the_host() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into(), "fd00::a".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&dns), "nameserver 1.1.1.1\n").expect("ok"),
            "nameserver 10.96.0.10\nnameserver fd00::a\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(None, "host\n").expect("ok"), "host\n");
        assert_eq!(
            resolv_conf(Some(&DnsConfig::default()), "host\n").expect("ok"),
            "host\n"
        );
        let bad = DnsConfig {
            servers: vec!["dns.example".into()],
            ..DnsConfig::default()
        };
        assert!(resolv_conf(Some(&bad), "").is_err());
        let injected = DnsConfig {
            searches: vec!["a\nnameserver 6.6.6.6".into()],
            ..DnsConfig::default()
        };
        assert_eq!(
            resolv_conf(Some(&injected), "")
                .expect_err("refused")
                .kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn hosts_and_files_on_disk() {
        let ip: IpAddr = "10.88.0.7".parse().expect("ip");
        let text = hosts("web-0", &[ip]).expect("hosts");
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.ends_with("10.88.0.7\tweb-0\n"), "{text}");
        assert!(hosts("bad name", &[]).is_err());

        let tmp = tempfile::tempdir().expect("tempdir");
        let files = write_pod_files(tmp.path(), "web-0", None, &[ip]).expect("write");
        assert_eq!(
            std::fs::read_to_string(&files.hostname).expect("read"),
            "web-0\n"
        );
        assert!(std::fs::read_to_string(&files.hosts)
            .expect("read")
            .contains("web-0"));
        assert!(files.resolv_conf.exists());
    }
}
