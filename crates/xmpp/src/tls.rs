//! The TLS client configuration: which servers to trust, and why one was refused.
//!
//! Two ways to trust a server, never mixed:
//! - **Pins** ([`TrustConfig::pins`], from an invite link or `--pin`): the server is
//!   accepted exactly when the public key of its certificate has one of the pins, whoever
//!   signed the certificate and whatever names or dates it holds (a self-signed or CA:TRUE
//!   certificate as Prosody's, ejabberd's and openssl's tools make is fine). A mismatch
//!   ends the handshake before anything of ours is sent over it.
//! - **Certificate authorities**: the system's roots plus, optionally, the certificates of
//!   a PEM file (`--ca-cert`), checked by rustls's WebPKI verifier (chain, name, dates).
//!
//! Either way a refusal carries what was seen: the reason and the pin of the key the
//! server presented ([`Refusal`]), so that the error can say what happened and what a
//! person could check. Nothing is ever trusted on first use.

use std::path::Path;
use std::sync::Arc;

use cryptocat_link::Pin;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

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
    /// No trust anchor at all (no system roots, no file, no pin).
    #[error("no trusted certificates: the system has no roots and no CA file or pin was given")]
    NoRoots,
    /// rustls refused the protocol versions or the verifier (an internal bug).
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// Which servers to trust.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// Also trust the system's root certificates (default true via [`TrustConfig::system`]).
    pub system_roots: bool,
    /// Certificates trusted in addition (from a PEM file or given directly).
    pub extra: Vec<CertificateDer<'static>>,
    /// When not empty: trust exactly the servers whose key has one of these pins, and
    /// nothing else (roots and `extra` are not used).
    pub pins: Vec<Pin>,
}

/// What was wrong with a server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateReason {
    /// Pinned, and the server's key has none of the pins: not the server we were sent to.
    WrongKey,
    /// Not signed by a trusted authority (self-signed, or an unknown CA).
    UnknownIssuer,
    /// A CA certificate (CA:TRUE) presented as the server's own, as `prosodyctl cert
    /// generate`, Debian's ejabberd and `openssl req -x509` make.
    CaUsedAsEndEntity,
    /// Valid for another name.
    NameMismatch,
    /// Expired, or not valid yet.
    Expired,
    /// Anything else (bad encoding, unsupported algorithm, wrong purpose, revoked).
    Other,
}

/// A refused certificate: why, and the pin of the key it holds (when it could be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: CertificateReason,
    /// The pin of the key the server presented.
    pub seen: Option<Pin>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.reason {
            CertificateReason::WrongKey => {
                "the server is not the one the invite names: its key does not match the pin"
            }
            CertificateReason::UnknownIssuer => {
                "the server's certificate is not signed by a trusted authority (self-signed or unknown issuer)"
            }
            CertificateReason::CaUsedAsEndEntity => {
                "the server presents a CA certificate as its own (as self-signed certificates from prosodyctl, ejabberd or openssl are)"
            }
            CertificateReason::NameMismatch => "the server's certificate is for another name",
            CertificateReason::Expired => {
                "the server's certificate has expired or is not valid yet"
            }
            CertificateReason::Other => "the server's certificate was refused",
        })?;
        if let Some(seen) = &self.seen {
            write!(f, "; its key is {seen}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

impl TrustConfig {
    /// The system roots only.
    pub fn system() -> Self {
        Self {
            system_roots: true,
            ..Self::default()
        }
    }

    /// The system roots plus every certificate in a PEM file.
    pub fn system_and_file(path: &Path) -> Result<Self, TlsConfigError> {
        let mut config = Self::system();
        config.add_pem_file(path)?;
        Ok(config)
    }

    /// Only the given certificate as a trust anchor (tests).
    pub fn only(cert: CertificateDer<'static>) -> Self {
        Self {
            extra: vec![cert],
            ..Self::default()
        }
    }

    /// Exactly the servers whose key has one of `pins`.
    pub fn pinned(pins: Vec<Pin>) -> Self {
        Self {
            pins,
            ..Self::default()
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
        self.build(true, AcceptedKey::default())
    }

    /// Like [`TrustConfig::client_config`], but no trust anchor at all is allowed (for
    /// transports without TLS, `ws://` and `http://`: such a configuration refuses every
    /// server, and is never used there).
    pub fn client_config_allow_empty(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        self.build(false, AcceptedKey::default())
    }

    /// Like [`TrustConfig::client_config`], and `accepted` learns the pin of every server
    /// key the configuration accepts (so that the client can tell which key it talks to).
    pub fn client_config_recording(
        &self,
        accepted: &AcceptedKey,
    ) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        self.build(true, accepted.clone())
    }

    fn build(
        &self,
        require_roots: bool,
        accepted: AcceptedKey,
    ) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let check = if self.pins.is_empty() {
            let roots = self.roots()?;
            if roots.is_empty() {
                if require_roots {
                    return Err(TlsConfigError::NoRoots);
                }
                Check::Nothing
            } else {
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsConfigError::Config(e.to_string()))?;
                Check::Authorities(verifier)
            }
        } else {
            Check::Pins(self.pins.clone())
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                check,
                algorithms,
                accepted,
            }))
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, TlsConfigError> {
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
        Ok(roots)
    }
}

/// The pin of the last server key a configuration accepted (shared with its verifier).
#[derive(Debug, Clone, Default)]
pub struct AcceptedKey(Arc<std::sync::Mutex<Option<Pin>>>);

impl AcceptedKey {
    /// The last accepted key's pin.
    pub fn get(&self) -> Option<Pin> {
        self.0.lock().map(|p| *p).unwrap_or(None)
    }

    /// Forgets it (before a new connection).
    pub fn clear(&self) {
        if let Ok(mut p) = self.0.lock() {
            *p = None;
        }
    }

    fn set(&self, pin: Pin) {
        if let Ok(mut p) = self.0.lock() {
            *p = Some(pin);
        }
    }
}

/// How the certificate is checked.
#[derive(Debug)]
enum Check {
    /// The key must have one of the pins.
    Pins(Vec<Pin>),
    /// rustls's WebPKI verifier with these roots.
    Authorities(Arc<WebPkiServerVerifier>),
    /// No trust anchor: every server is refused.
    Nothing,
}

/// The one certificate verifier: pins or authorities, and refusals that say what was seen.
/// Handshake signatures are always checked with the provider's algorithms against the
/// presented certificate's key, so a server must hold the private key of what it shows.
#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
    accepted: AcceptedKey,
}

fn refused(reason: CertificateReason, seen: Option<Pin>) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Refusal { reason, seen },
    ))))
}

/// Sorts rustls's and WebPKI's certificate errors into what a person can act on.
fn reason_of(error: &CertificateError) -> CertificateReason {
    use CertificateError as C;
    match error {
        C::UnknownIssuer | C::BadSignature => CertificateReason::UnknownIssuer,
        C::NotValidForName | C::NotValidForNameContext { .. } => CertificateReason::NameMismatch,
        C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. } => {
            CertificateReason::Expired
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => CertificateReason::CaUsedAsEndEntity,
            _ => CertificateReason::Other,
        },
        _ => CertificateReason::Other,
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Pin::of_certificate(end_entity).ok();
        let verdict = match &self.check {
            Check::Pins(pins) => match seen {
                Some(pin) if pin.is_in(pins) => Ok(ServerCertVerified::assertion()),
                _ => Err(refused(CertificateReason::WrongKey, seen)),
            },
            Check::Authorities(verifier) => verifier
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| match e {
                    rustls::Error::InvalidCertificate(c) => refused(reason_of(&c), seen),
                    other => other,
                }),
            Check::Nothing => Err(refused(CertificateReason::UnknownIssuer, seen)),
        };
        if let (Ok(_), Some(pin)) = (&verdict, seen) {
            self.accepted.set(pin);
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The refusal inside a rustls error from our verifier, if that is what it is.
pub(crate) fn refusal_of(error: &rustls::Error) -> Option<Refusal> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<Refusal>().cloned()
        }
        _ => None,
    }
}
