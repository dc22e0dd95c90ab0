//! The TLS client configuration: the system's roots plus, optionally, the certificates of
//! one PEM file (a CA, or a server's self-signed certificate, as `--ca-cert PATH` gives).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The CA file could not be read.
    #[error("cannot read the CA certificate file: {0}")]
    Read(std::io::ErrorKind),
    /// The CA file holds no PEM certificate.
    #[error("the CA certificate file holds no PEM certificate")]
    NoCertificate,
    /// A certificate in the file was refused as a trust anchor.
    #[error("a certificate in the CA file is not usable as a trust anchor")]
    BadCertificate,
    /// No trust anchor at all (no system roots and no file).
    #[error("no trusted certificates: the system has no roots and no CA file was given")]
    NoRoots,
    /// rustls refused the protocol versions (an internal bug).
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// Which certificates to trust.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// Also trust the system's root certificates (default true via [`TrustConfig::system`]).
    pub system_roots: bool,
    /// Certificates trusted in addition (from a PEM file or given directly).
    pub extra: Vec<CertificateDer<'static>>,
}

impl TrustConfig {
    /// The system roots only.
    pub fn system() -> Self {
        Self {
            system_roots: true,
            extra: Vec::new(),
        }
    }

    /// The system roots plus every certificate in a PEM file.
    pub fn system_and_file(path: &Path) -> Result<Self, TlsConfigError> {
        let mut config = Self::system();
        config.add_pem_file(path)?;
        Ok(config)
    }

    /// Only the given certificate (tests; a pinned self-signed server).
    pub fn only(cert: CertificateDer<'static>) -> Self {
        Self {
            system_roots: false,
            extra: vec![cert],
        }
    }

    /// Adds every certificate of a PEM file.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), TlsConfigError> {
        let bytes = std::fs::read(path).map_err(|e| TlsConfigError::Read(e.kind()))?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(TlsConfigError::NoCertificate);
        }
        self.extra.extend(certs);
        Ok(())
    }

    /// Builds the rustls client configuration (ring provider, TLS 1.2 and 1.3).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        self.build(true)
    }

    /// Like [`TrustConfig::client_config`], but an empty root store is allowed (for
    /// transports without TLS, `ws://` and `http://`: the configuration is never used to
    /// trust anyone there).
    pub fn client_config_allow_empty(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        self.build(false)
    }

    fn build(&self, require_roots: bool) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            if !found.errors.is_empty() {
                tracing::debug!(errors = found.errors.len(), "some system roots unreadable");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system roots loaded");
        }
        for cert in &self.extra {
            roots
                .add(cert.clone())
                .map_err(|_| TlsConfigError::BadCertificate)?;
        }
        if require_roots && roots.is_empty() {
            return Err(TlsConfigError::NoRoots);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }
}
