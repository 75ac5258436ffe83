//! Files a test registry needs: its YAML config, a self-signed CA with a
//! server certificate, and an htpasswd file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the TLS material written for a registry.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// A fresh CA, and a server certificate it signs for `127.0.0.1`, `::1`
/// and `localhost`, written as PEM files into `dir`.
pub(crate) fn write_tls(dir: &Path) -> Result<TlsFiles> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "corten test registry CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().context("CA key")?;
    let ca_cert = ca_params.self_signed(&ca_key).context("self-sign CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let names = vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ];
    let mut params = CertificateParams::new(names).context("server cert params")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().context("server key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("sign server cert")?;

    let files = TlsFiles {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("server.pem"),
        key_pem: dir.join("server-key.pem"),
    };
    write(&files.ca_pem, ca_cert.pem().as_bytes())?;
    write(&files.cert_pem, cert.pem().as_bytes())?;
    write(&files.key_pem, key.serialize_pem().as_bytes())?;
    Ok(files)
}

/// An htpasswd file with one bcrypt entry, as `htpasswd -Bbn` writes.
pub(crate) fn write_htpasswd(path: &Path, user: &str, password: &str) -> Result<()> {
    // Cost 5 (htpasswd's default): the registry checks it on every request.
    let hash = bcrypt::hash_with_result(password, 5)
        .context("bcrypt password")?
        .format_for_version(bcrypt::Version::TwoY);
    write(path, format!("{user}:{hash}\n").as_bytes())
}

/// Inputs of the registry's `config.yml`.
#[derive(Debug)]
pub(crate) struct ConfigInputs<'a> {
    pub storage: &'a Path,
    pub addr: &'a str,
    pub tls: Option<&'a TlsFiles>,
    pub htpasswd: Option<&'a Path>,
}

/// The registry's YAML config. Paths are quoted as YAML strings.
pub(crate) fn config_yaml(c: &ConfigInputs<'_>) -> String {
    let mut y = String::new();
    // Infallible: writing to a String.
    let _ = writeln!(
        y,
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {}\n  secret: corten-test-secret\n  headers:\n    X-Content-Type-Options: [nosniff]",
        quote(c.storage),
        c.addr,
    );
    if let Some(tls) = c.tls {
        let _ = writeln!(
            y,
            "  tls:\n    certificate: {}\n    key: {}",
            quote(&tls.cert_pem),
            quote(&tls.key_pem)
        );
    }
    if let Some(htpasswd) = c.htpasswd {
        let _ = writeln!(
            y,
            "auth:\n  htpasswd:\n    realm: corten-test\n    path: {}",
            quote(htpasswd)
        );
    }
    y.push_str("health:\n  storagedriver:\n    enabled: false\n");
    y
}

fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_parts_asked_for() {
        let storage = Path::new("/tmp/x/storage");
        let tls = TlsFiles {
            ca_pem: "/tmp/x/ca.pem".into(),
            cert_pem: "/tmp/x/server.pem".into(),
            key_pem: "/tmp/x/key.pem".into(),
        };
        let plain = config_yaml(&ConfigInputs {
            storage,
            addr: "127.0.0.1:5000",
            tls: None,
            htpasswd: None,
        });
        assert!(plain.contains("rootdirectory: \"/tmp/x/storage\""));
        assert!(plain.contains("addr: 127.0.0.1:5000"));
        assert!(!plain.contains("tls:") && !plain.contains("auth:"));
        let full = config_yaml(&ConfigInputs {
            storage,
            addr: "127.0.0.1:5000",
            tls: Some(&tls),
            htpasswd: Some(Path::new("/tmp/x/htpasswd")),
        });
        assert!(full.contains("  tls:\n    certificate: \"/tmp/x/server.pem\""));
        assert!(full.contains("auth:\n  htpasswd:"));
    }

    #[test]
    fn htpasswd_entry_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("htpasswd");
        write_htpasswd(&p, "alice", "s3cret").expect("write");
        let line = std::fs::read_to_string(&p).expect("read");
        let hash = line.trim().strip_prefix("alice:").expect("user prefix");
        assert!(hash.starts_with("$2y$05$"));
        assert!(bcrypt::verify("s3cret", hash).expect("verify"));
    }
}
