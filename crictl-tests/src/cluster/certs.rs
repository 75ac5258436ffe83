//! The TLS material of a test cluster, made for each run (as the test
//! registry's is, with rcgen): a CA, the API server's serving certificate
//! for loopback, one client certificate in `system:masters` (kubectl, the
//! kubelet, the controllers, and the API server talking to the kubelet),
//! and the service-account signing key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The in-cluster name and service address the serving certificate also
/// names (the `kubernetes` service), besides loopback.
const SERVER_NAMES: [&str; 7] = [
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    super::KUBERNETES_SERVICE_IP,
];

/// The client's user name and group: `system:masters` may do anything
/// under RBAC.
pub const CLIENT_USER: &str = "corten-test-admin";
pub const CLIENT_GROUP: &str = "system:masters";

/// Paths of the PEM files written by [`write`].
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The service-account signing key (PKCS#8) and its public half.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

/// Makes the CA and everything it signs, written into `dir`.
pub fn write(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "corten test cluster CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().context("CA key")?;
    let ca_cert = ca_params.self_signed(&ca_key).context("self-sign CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let names: Vec<String> = SERVER_NAMES.iter().map(|n| n.to_string()).collect();
    let mut server = CertificateParams::new(names).context("server cert params")?;
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate().context("server key")?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .context("sign the server cert")?;

    let mut client = CertificateParams::new(Vec::<String>::new()).context("client params")?;
    client
        .distinguished_name
        .push(DnType::CommonName, CLIENT_USER);
    client
        .distinguished_name
        .push(DnType::OrganizationName, CLIENT_GROUP);
    client.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.use_authority_key_identifier_extension = true;
    let client_key = KeyPair::generate().context("client key")?;
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .context("sign the client cert")?;

    let sa_key = KeyPair::generate().context("service-account key")?;

    let pki = Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("apiserver.pem"),
        server_key: dir.join("apiserver-key.pem"),
        client_cert: dir.join("admin.pem"),
        client_key: dir.join("admin-key.pem"),
        service_account_key: dir.join("sa-key.pem"),
        service_account_pub: dir.join("sa.pub"),
    };
    write_file(&pki.ca, &ca_cert.pem())?;
    write_file(&pki.server_cert, &server_cert.pem())?;
    write_file(&pki.server_key, &server_key.serialize_pem())?;
    write_file(&pki.client_cert, &client_cert.pem())?;
    write_file(&pki.client_key, &client_key.serialize_pem())?;
    write_file(&pki.service_account_key, &sa_key.serialize_pem())?;
    write_file(&pki.service_account_pub, &sa_key.public_key_pem())?;
    Ok(pki)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_as_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = write(&dir.path().join("pki")).expect("pki");
        for (path, kind) in [
            (&pki.ca, "CERTIFICATE"),
            (&pki.server_cert, "CERTIFICATE"),
            (&pki.client_cert, "CERTIFICATE"),
            (&pki.server_key, "PRIVATE KEY"),
            (&pki.client_key, "PRIVATE KEY"),
            (&pki.service_account_key, "PRIVATE KEY"),
            (&pki.service_account_pub, "PUBLIC KEY"),
        ] {
            let text = std::fs::read_to_string(path).expect("read");
            assert!(
                text.starts_with(&format!("-----BEGIN {kind}-----")),
                "{}: {text}",
                path.display()
            );
        }
    }
}
