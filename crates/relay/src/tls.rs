//! TLS: the configured certificate, or a self-signed one generated at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `--tls-cert` and `--tls-key` was given.
    #[error("--tls-cert and --tls-key must be given together")]
    Incomplete,
    /// The certificate or key file could not be read.
    #[error("cannot read {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// Writing the generated certificate failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's TLS identity.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Accepts TLS on an upgraded connection.
    pub acceptor: TlsAcceptor,
    /// The end-entity certificate.
    pub certificate: CertificateDer<'static>,
    /// Where the certificate's PEM is.
    pub certificate_path: PathBuf,
    /// Whether the certificate was generated at start.
    pub generated: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificate_path", &self.certificate_path)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl TlsIdentity {
    /// SHA-256 of the certificate, as colon-separated upper-case hex.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.certificate.as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Loads the configured certificate or generates one.
    pub fn from_config(config: &Config) -> Result<Self, TlsError> {
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Self::load(cert, key),
            (None, None) => Self::generate(config),
            _ => Err(TlsError::Incomplete),
        }
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let pem_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .map_err(|e| pem_err(cert_path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert_path, &e))?;
        let first = chain
            .first()
            .cloned()
            .ok_or_else(|| pem_err(cert_path, &"no certificate in file"))?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_err(key_path, &e))?;
        Ok(Self {
            acceptor: acceptor(chain, key)?,
            certificate: first,
            certificate_path: cert_path.to_owned(),
            generated: false,
        })
    }

    fn generate(config: &Config) -> Result<Self, TlsError> {
        let names = vec![config.domain.clone(), config.muc_domain()];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let dir = match &config.state_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("cryptocat-server-{}", std::process::id())),
        };
        std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{}.pem", config.domain));
        std::fs::write(&path, certified.cert.pem()).map_err(|source| TlsError::Write {
            path: path.clone(),
            source,
        })?;
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.key_pair.serialize_der())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(Self {
            acceptor: acceptor(vec![cert.clone()], key)?,
            certificate: cert,
            certificate_path: path,
            generated: true,
        })
    }
}

fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The RFC 9266 `tls-exporter` channel binding of a server connection: 32 bytes exported
/// with label `EXPORTER-Channel-Binding` and no context. `None` if the connection cannot
/// export (not expected after a completed handshake).
pub fn exporter(conn: &rustls::ServerConnection) -> Option<[u8; 32]> {
    let mut out = [0u8; cryptocat_protocol::keyauth::EXPORTER_BYTES];
    conn.export_keying_material(&mut out, cryptocat_protocol::keyauth::EXPORTER_LABEL, None)
        .ok()?;
    Some(out)
}
