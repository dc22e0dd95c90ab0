//! TLS: the configured certificate, a self-signed one generated here, or one from ACME
//! ([`crate::acme`]).
//!
//! **The key and its pin.** Invite links carry a pin of the server's public key
//! (`cryptocat_link::Pin`, the SHA-256 of its SubjectPublicKeyInfo), so the key must outlive
//! a restart. With a state directory, the generated key is kept there as `DOMAIN.key`
//! (PKCS#8 PEM, `0600`) beside its self-signed certificate `DOMAIN.pem`, and both are read
//! back at the next start: the pin stays the same. ACME certificates are requested for
//! that same key (the CSR is made from it), so renewals keep the pin too. Without a state
//! directory a new key is made at every start and only the certificate is written (to a
//! directory under the system's temporary directory), as before.
//!
//! **A new key.** [`forget_generated`] deletes the kept key and certificate, and
//! [`TlsIdentity::renew_generated`] does that and makes a new identity: the desktop app's
//! "make a new key" action. Every link made earlier stops working (their pin names the old
//! key). On an ACME server the next start orders a certificate for the new key.
//!
//! **Swapping.** Every acceptor resolves its certificate through one [`CertSlot`], so a
//! renewed ACME certificate is served to the next handshake without a restart; the key,
//! and so [`TlsIdentity::pin`], never changes while the server runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use cryptocat_link::Pin;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::store;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `--tls-cert` and `--tls-key` was given.
    #[error("--tls-cert and --tls-key must be given together")]
    Incomplete,
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Generating a key or the self-signed certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// Writing to the state directory failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate whose public key is not the server's (an ACME certificate for another
    /// key): refused, since it would change the pin.
    #[error("the certificate is not for the server's key")]
    OtherKey,
    /// ACME and certificate files were both configured.
    #[error("acme and --tls-cert/--tls-key exclude each other: choose one")]
    AcmeWithFiles,
    /// ACME without a state directory, where its account and key must be kept.
    #[error("acme needs a state directory (--state-dir) for its account, key and certificates")]
    AcmeNeedsStateDir,
}

/// Where the certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `tls_cert`/`tls_key`.
    Loaded,
    /// Self-signed, made here (kept in the state directory when there is one).
    Generated,
    /// ACME (the self-signed one of the same key is served until the first arrives).
    Acme,
}

/// The certificate every handshake gets; replaced in place by an ACME renewal.
pub struct CertSlot {
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSlot").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl CertSlot {
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The server's TLS identity.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Accepts TLS on an upgraded connection.
    pub acceptor: TlsAcceptor,
    /// The end-entity certificate served at start (an ACME renewal serves a newer one:
    /// [`Self::current_certificate`]; both have the same key).
    pub certificate: CertificateDer<'static>,
    /// Where the certificate's PEM is (at start).
    pub certificate_path: PathBuf,
    /// Whether the certificate served at start was generated here (self-signed).
    pub generated: bool,
    /// Where the certificate comes from.
    pub origin: Origin,
    pin: Pin,
    slot: Arc<CertSlot>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificate_path", &self.certificate_path)
            .field("origin", &self.origin)
            .field("pin", &self.pin)
            .finish()
    }
}

/// The TLS private key kept in the state directory (`DOMAIN.key`).
pub(crate) struct StoredKey {
    /// The key, for certificates and CSRs.
    pub(crate) pair: rcgen::KeyPair,
    /// Its PKCS#8 DER, for rustls.
    der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("pin", &Pin::of_spki(&self.pair.public_key_der()))
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    fn generate() -> Result<Self, TlsError> {
        let pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: rcgen::KeyPair) -> Self {
        let der = Zeroizing::new(pair.serialize_der());
        Self { pair, der }
    }

    /// The key for rustls (a copy; rustls keeps its own parsed form).
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.der.to_vec()))
    }

    /// The pin of the public key.
    pub(crate) fn pin(&self) -> Pin {
        Pin::of_spki(&self.pair.public_key_der())
    }

    /// Reads `DOMAIN.key` from `dir`, or makes one and writes it (`0600`; if another
    /// process wrote one first, that one is used).
    pub(crate) fn load_or_create(dir: &Path, domain: &str) -> Result<Self, TlsError> {
        let path = key_path(dir, domain);
        if let Some(key) = Self::read(&path)? {
            return Ok(key);
        }
        store::private_dir(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let key = Self::generate()?;
        let pem = Zeroizing::new(key.pair.serialize_pem());
        let created =
            store::create_new(&path, pem.as_bytes()).map_err(|source| TlsError::Write {
                path: path.clone(),
                source,
            })?;
        if created {
            return Ok(key);
        }
        Self::read(&path)?.ok_or_else(|| TlsError::Pem {
            path,
            reason: "the key file vanished".into(),
        })
    }

    fn read(path: &Path) -> Result<Option<Self>, TlsError> {
        let pem = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TlsError::Pem {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        // The message says what is wrong without quoting the file.
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(|_| TlsError::Pem {
            path: path.to_owned(),
            reason: "not a PKCS#8 private key this server can use".into(),
        })?;
        Ok(Some(Self::from_pair(pair)))
    }
}

/// The kept key of `domain` in `dir`.
pub fn key_path(dir: &Path, domain: &str) -> PathBuf {
    dir.join(format!("{domain}.key"))
}

/// The kept self-signed certificate of `domain` in `dir`.
pub fn generated_certificate_path(dir: &Path, domain: &str) -> PathBuf {
    dir.join(format!("{domain}.pem"))
}

/// Deletes the generated key and certificate of `domain` kept in `state_dir`, so that the
/// next start makes a new key: links made earlier stop working (their pin names the old
/// key). For the desktop app's "make a new key"; a running relay keeps serving the old key
/// until it is started again. Files that are not there are not an error.
pub fn forget_generated(state_dir: &Path, domain: &str) -> std::io::Result<()> {
    store::remove(&key_path(state_dir, domain))?;
    store::remove(&generated_certificate_path(state_dir, domain))
}

impl TlsIdentity {
    /// SHA-256 of the certificate served now, as colon-separated upper-case hex.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.current_certificate().as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The pin of the server's key (the same for every certificate it serves).
    pub fn pin(&self) -> Pin {
        self.pin
    }

    /// The end-entity certificate served now.
    pub fn current_certificate(&self) -> CertificateDer<'static> {
        self.slot
            .current()
            .cert
            .first()
            .cloned()
            .unwrap_or_else(|| self.certificate.clone())
    }

    /// Loads the configured certificate or generates one (reusing the key and certificate
    /// kept in the state directory). For ACME this is the certificate served at start: a
    /// kept ACME certificate is chosen by [`crate::acme`], which calls
    /// [`Self::from_parts`].
    pub fn from_config(config: &Config) -> Result<Self, TlsError> {
        match (&config.tls_cert, &config.tls_key, &config.acme) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(TlsError::AcmeWithFiles),
            (Some(cert), Some(key), None) => Self::load(cert, key),
            (None, None, _) => Self::generate(config),
            _ => Err(TlsError::Incomplete),
        }
    }

    /// Deletes the generated key and certificate kept in the configuration's state
    /// directory ([`forget_generated`]) and makes a new identity: another key, another
    /// pin. Without a state directory this is simply a new identity.
    pub fn renew_generated(config: &Config) -> Result<Self, TlsError> {
        if let Some(dir) = &config.state_dir {
            forget_generated(dir, &config.domain).map_err(|source| TlsError::Write {
                path: dir.clone(),
                source,
            })?;
        }
        Self::generate(config)
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
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_err(key_path, &e))?;
        let first = chain
            .first()
            .ok_or_else(|| pem_err(cert_path, &"no certificate in file"))?;
        let pin = Pin::of_certificate(first)
            .map_err(|_| pem_err(cert_path, &"the certificate's public key cannot be read"))?;
        Self::from_parts(chain, key, pin, cert_path.to_owned(), Origin::Loaded, false)
    }

    /// The self-signed certificate of the kept key (or of a fresh one without a state
    /// directory), for the domain and `conference.<domain>`; written to the state
    /// directory (or a temporary one).
    fn generate(config: &Config) -> Result<Self, TlsError> {
        let origin = if config.acme.is_some() {
            Origin::Acme
        } else {
            Origin::Generated
        };
        let (dir, key) = match &config.state_dir {
            Some(dir) => (dir.clone(), StoredKey::load_or_create(dir, &config.domain)?),
            None if config.acme.is_some() => return Err(TlsError::AcmeNeedsStateDir),
            None => (
                std::env::temp_dir().join(format!("cryptocat-server-{}", std::process::id())),
                StoredKey::generate()?,
            ),
        };
        store::private_dir(&dir).map_err(|source| TlsError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = generated_certificate_path(&dir, &config.domain);
        let kept = config.state_dir.is_some();
        let cert = match kept.then(|| read_certificate_of(&path, &key)).flatten() {
            Some(cert) => cert,
            None => {
                let names = vec![config.domain.clone(), config.muc_domain()];
                let made = rcgen::CertificateParams::new(names)
                    .and_then(|params| params.self_signed(&key.pair))
                    .map_err(|e| TlsError::Generate(e.to_string()))?;
                // A first start of two processes at once: the first one's certificate
                // is kept and both serve it. A file for another key is replaced.
                let first_start = kept && !path.exists();
                let written = if first_start {
                    store::create_new(&path, made.pem().as_bytes()).map(|_| ())
                } else {
                    store::replace(&path, made.pem().as_bytes())
                };
                written.map_err(|source| TlsError::Write {
                    path: path.clone(),
                    source,
                })?;
                first_start
                    .then(|| read_certificate_of(&path, &key))
                    .flatten()
                    .unwrap_or_else(|| made.der().clone())
            }
        };
        let pin = key.pin();
        Self::from_parts(vec![cert], key.private_key(), pin, path, origin, true)
    }

    /// An identity serving `chain` with `key`, whose public key has `pin`; `generated`:
    /// the certificate is self-signed, made here.
    pub(crate) fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        pin: Pin,
        certificate_path: PathBuf,
        origin: Origin,
        generated: bool,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = CertifiedKey::from_der(chain, key, &provider)?;
        let certificate = certified
            .end_entity_cert()
            .map_err(TlsError::Rustls)?
            .clone()
            .into_owned();
        let slot = Arc::new(CertSlot {
            current: RwLock::new(Arc::new(certified)),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&slot) as Arc<dyn ResolvesServerCert>);
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            generated,
            certificate,
            certificate_path,
            origin,
            pin,
            slot,
        })
    }

    /// Serves `chain` from the next handshake on. The end-entity certificate must be for
    /// the server's key (the pin never changes while the server runs).
    pub(crate) fn install(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let first = chain.first().ok_or(TlsError::OtherKey)?;
        if Pin::of_certificate(first).map_or(true, |pin| !pin.matches(&self.pin)) {
            return Err(TlsError::OtherKey);
        }
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)?;
        *self
            .slot
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(())
    }
}

/// The certificate in the PEM file at `path` if it is for `key`.
fn read_certificate_of(path: &Path, key: &StoredKey) -> Option<CertificateDer<'static>> {
    let cert = CertificateDer::from_pem_file(path).ok()?;
    let pin = Pin::of_certificate(&cert).ok()?;
    pin.matches(&key.pin()).then_some(cert)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn config(tag: &str) -> (Config, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-tls-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::new("chat.example.org", SocketAddr::from(([127, 0, 0, 1], 0)));
        config.state_dir = Some(dir.clone());
        (config, dir)
    }

    #[test]
    fn the_kept_key_gives_the_same_pin_at_every_start() {
        let (config, dir) = config("same");
        let one = TlsIdentity::from_config(&config).unwrap();
        let two = TlsIdentity::from_config(&config).unwrap();
        assert_eq!(one.pin(), two.pin());
        assert_eq!(
            one.certificate, two.certificate,
            "the certificate is reused too"
        );
        assert_eq!(one.pin(), Pin::of_certificate(&one.certificate).unwrap());
        assert!(one.generated && one.origin == Origin::Generated);
        assert_eq!(
            one.certificate_path,
            generated_certificate_path(&dir, "chat.example.org")
        );
        // Without a state directory: a new key every time.
        let mut temporary = config.clone();
        temporary.state_dir = None;
        let a = TlsIdentity::from_config(&temporary).unwrap();
        let b = TlsIdentity::from_config(&temporary).unwrap();
        assert_ne!(a.pin(), b.pin());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn renewing_makes_another_key_and_keeps_it() {
        let (config, dir) = config("renew");
        let old = TlsIdentity::from_config(&config).unwrap();
        let new = TlsIdentity::renew_generated(&config).unwrap();
        assert_ne!(old.pin(), new.pin());
        assert_eq!(TlsIdentity::from_config(&config).unwrap().pin(), new.pin());
        forget_generated(&dir, "chat.example.org").unwrap();
        assert!(!key_path(&dir, "chat.example.org").exists());
        assert_ne!(TlsIdentity::from_config(&config).unwrap().pin(), new.pin());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A certificate file that is not for the kept key (copied from elsewhere) is replaced
    /// by one that is, and the pin stays the key's.
    #[test]
    fn a_certificate_for_another_key_is_not_served() {
        let (config, dir) = config("other");
        let first = TlsIdentity::from_config(&config).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["chat.example.org".into()]).unwrap();
        std::fs::write(&first.certificate_path, other.cert.pem()).unwrap();
        // The file is read, found to be for another key, and replaced.
        let again = TlsIdentity::from_config(&config).unwrap();
        assert_eq!(again.pin(), first.pin());
        assert_eq!(
            Pin::of_certificate(&again.certificate).unwrap(),
            first.pin()
        );
        let on_disk = CertificateDer::from_pem_file(&again.certificate_path).unwrap();
        assert_eq!(on_disk, again.certificate);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn install_refuses_a_certificate_for_another_key() {
        let (config, dir) = config("install");
        let id = TlsIdentity::from_config(&config).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["chat.example.org".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(other.key_pair.serialize_der()));
        assert!(matches!(
            id.install(vec![other.cert.der().clone()], key),
            Err(TlsError::OtherKey)
        ));
        let kept = StoredKey::load_or_create(&dir, "chat.example.org").unwrap();
        let params = rcgen::CertificateParams::new(vec!["x.example.org".into()]).unwrap();
        let renewed = params.self_signed(&kept.pair).unwrap();
        id.install(vec![renewed.der().clone()], kept.private_key())
            .unwrap();
        assert_eq!(&id.current_certificate(), renewed.der());
        assert_ne!(id.current_certificate(), id.certificate);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_0600_in_a_0700_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let (config, dir) = config("modes");
        TlsIdentity::from_config(&config).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_path(&dir, "chat.example.org")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let pem = std::fs::read_to_string(key_path(&dir, "chat.example.org")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn acme_needs_a_state_directory_and_no_files() {
        let (mut config, _) = config("acme");
        config.acme = Some(crate::acme::AcmeConfig::default());
        config.state_dir = None;
        assert!(matches!(
            TlsIdentity::from_config(&config),
            Err(TlsError::AcmeNeedsStateDir)
        ));
        config.tls_cert = Some("c.pem".into());
        config.tls_key = Some("k.pem".into());
        assert!(matches!(
            TlsIdentity::from_config(&config),
            Err(TlsError::AcmeWithFiles)
        ));
    }
}
