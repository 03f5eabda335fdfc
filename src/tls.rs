//! TLS client configuration shared by the IMAP and SMTP connections (rustls with the ring
//! provider): the system's roots plus an optional extra CA file.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// TLS client configuration: the system's roots plus an optional extra CA file.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken system certificate should not stop us; the others still count.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        use rustls_pki_types::pem::PemObject;
        let mut n = 0;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
            .with_context(|| format!("Reading ca_file {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("Parsing ca_file {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("Adding a certificate from {}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            bail!("ca_file {} holds no PEM certificate", path.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("Choosing TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
