//! Certificates by ACME (RFC 8555), with the HTTP-01 challenge, through `instant-acme`.
//!
//! **What is asked for.** One certificate for [`names`]: the XMPP domain (c2s clients
//! check the certificate against it after STARTTLS) and the public host when it differs
//! (WebSocket and BOSH clients check the host they connect to). `conference.<domain>` is
//! not in it: no client opens TLS to the room service (this relay has no
//! server-to-server links), and every name costs a DNS record and a validation.
//!
//! **The key.** The certificate is requested (CSR) for the key kept in the state
//! directory, `DOMAIN.key` ([`crate::tls`]), at every renewal: the pin in invite links
//! never changes. Until the first ACME certificate arrives the server serves the
//! self-signed certificate of that same key, so links printed at the first start work
//! from the first second; clients that check certificate authorities instead of a pin
//! succeed once it has arrived.
//!
//! **Challenge.** HTTP-01: a small plain-HTTP listener ([`AcmeConfig::challenge_listen`],
//! port 80 by default) answers `GET /.well-known/acme-challenge/TOKEN` while an order is
//! pending and `404` to anything else. It is independent of where the TLS listeners are
//! (c2s on 5222 with STARTTLS cannot answer TLS-ALPN-01, which Let's Encrypt checks on
//! port 443 only) and of a reverse proxy in front of the HTTP listener.
//!
//! **Files** (state directory, all `0600`): `acme-account-H.json` (the account's
//! credentials, with its key, for the directory whose URL hashes to `H`) and
//! `DOMAIN.acme-H.pem` (the certificate chain). A kept certificate that is for the key,
//! covers the names and has not expired is served at start.
//!
//! **Renewal.** In the background at two thirds of the certificate's lifetime (about 30
//! days before the end of a 90-day Let's Encrypt certificate); the new certificate is
//! installed in the [`crate::tls::CertSlot`] every listener resolves through, so the next
//! handshake gets it without a restart. A failed order is retried after 5 minutes, then
//! doubling up to 6 hours (Let's Encrypt allows 5 failed validations per name per hour).
//! [`Acme::renew`] orders at once (tests, an operator's tool).
//!
//! Errors say what failed ("ACME order failed: …" with the CA's problem document) and
//! never carry a key; logs carry the names (public DNS names) and dates only.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin as StdPin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::hub::lock;
use crate::store;
use crate::tls::{Origin, StoredKey, TlsError, TlsIdentity};

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (for trying a set-up without its rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// The path prefix HTTP-01 validation requests use.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// The first wait after a failed order; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5 * 60);
/// The longest wait between failed orders.
pub const RETRY_MAX: Duration = Duration::from_secs(6 * 60 * 60);
/// How long one order may take, validation and issuance included.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one request to the CA may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest sleep of the renewal task before it looks at the clock again (a machine
/// that slept, or a clock that jumped, is noticed within this).
const WAKE_AT_LEAST: Duration = Duration::from_secs(60 * 60);
/// Connections the challenge listener serves at once; more are closed at once.
const CHALLENGE_CONNECTIONS: usize = 64;

/// ACME settings (`[acme]` in TOML, `--acme*` flags).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL (default: Let's Encrypt production, [`LETS_ENCRYPT`]).
    #[serde(default = "default_directory")]
    pub directory: String,
    /// A contact email address given to the CA (expiry warnings); optional.
    #[serde(default)]
    pub contact: Option<String>,
    /// The names on the certificate; empty: [`names`]'s default.
    #[serde(default)]
    pub domains: Vec<String>,
    /// A PEM file of certificate authorities trusted for the directory's own HTTPS, in
    /// addition to the system's (a test CA such as Pebble's).
    #[serde(default)]
    pub directory_ca: Option<PathBuf>,
    /// Where the HTTP-01 challenge listener binds (default `[::]:80`, which also takes
    /// IPv4 on Linux). The CA connects to port 80 of each name.
    #[serde(default = "default_challenge_listen")]
    pub challenge_listen: SocketAddr,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_owned()
}

/// `[::]:80`.
pub fn default_challenge_listen() -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80))
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: default_directory(),
            contact: None,
            domains: Vec::new(),
            directory_ca: None,
            challenge_listen: default_challenge_listen(),
        }
    }
}

/// The names on the certificate: [`AcmeConfig::domains`] if given, else the domain and the
/// public host when it differs.
pub fn names(config: &Config) -> Vec<String> {
    let given = config
        .acme
        .as_ref()
        .map(|a| a.domains.clone())
        .unwrap_or_default();
    let mut names: Vec<String> = if given.is_empty() {
        vec![config.domain.clone(), config.public_host().to_owned()]
    } else {
        given
    };
    for name in &mut names {
        *name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    }
    let mut seen = Vec::new();
    names.retain(|n| {
        !n.is_empty() && !seen.contains(n) && {
            seen.push(n.clone());
            true
        }
    });
    names
}

/// What went wrong with ACME.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The settings cannot work (a CA file that cannot be read, no trusted roots, a
    /// directory URL that is not HTTPS).
    #[error("ACME set-up: {0}")]
    Setup(String),
    /// The CA refused or failed the order, or could not be reached; the CA's explanation.
    #[error("ACME order failed: {0}")]
    Order(String),
    /// The certificate could not be kept or served.
    #[error("ACME certificate not installed: {0}")]
    Install(String),
}

/// A certificate from the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The end-entity certificate.
    pub certificate: CertificateDer<'static>,
    /// Where its chain is kept.
    pub path: PathBuf,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
    /// When it is renewed: two thirds into its lifetime.
    pub renew_at: SystemTime,
}

/// Where ACME stands.
#[derive(Debug, Clone, Default)]
pub struct AcmeStatus {
    /// The certificate served, once one has been issued (or was kept from before).
    pub issued: Option<Issued>,
    /// The last order's error, until an order succeeds.
    pub last_error: Option<String>,
    /// Orders that succeeded since start.
    pub orders: u64,
}

/// The ACME side of a running server: status, forced renewal. Cheap to clone.
#[derive(Clone)]
pub struct Acme {
    inner: Arc<Inner>,
}

struct Inner {
    directory: String,
    contact: Option<String>,
    names: Vec<String>,
    dir: PathBuf,
    certificate_path: PathBuf,
    account_path: PathBuf,
    key: StoredKey,
    tls: TlsIdentity,
    http: AcmeHttp,
    /// The account, once loaded or created; its lock also keeps orders one at a time.
    account: tokio::sync::Mutex<Option<Account>>,
    /// HTTP-01 tokens and their key authorizations, while an order is pending.
    challenges: Mutex<HashMap<String, String>>,
    status: watch::Sender<AcmeStatus>,
    wake: Notify,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.inner.directory)
            .field("names", &self.inner.names)
            .finish_non_exhaustive()
    }
}

/// A short, stable name for a directory URL in file names.
fn directory_tag(directory: &str) -> String {
    let digest = Sha256::digest(directory.as_bytes());
    hex::encode(digest.get(..6).unwrap_or_default())
}

/// The kept ACME certificate chain of `domain` from `directory`.
pub fn certificate_path(state_dir: &Path, domain: &str, directory: &str) -> PathBuf {
    state_dir.join(format!("{domain}.acme-{}.pem", directory_tag(directory)))
}

/// The kept ACME account credentials for `directory`.
pub fn account_path(state_dir: &Path, directory: &str) -> PathBuf {
    state_dir.join(format!("acme-account-{}.json", directory_tag(directory)))
}

impl Acme {
    /// Prepares ACME for `config` (which must have `acme` and `state_dir`): the HTTP
    /// client, the kept key, and the identity to serve at start (a kept ACME certificate
    /// that is still good, else the self-signed one of the same key).
    pub(crate) fn prepare(config: &Config) -> Result<(TlsIdentity, Self), crate::StartError> {
        let settings = config.acme.clone().unwrap_or_default();
        let dir = config
            .state_dir
            .clone()
            .ok_or(TlsError::AcmeNeedsStateDir)?;
        let names = names(config);
        if names.is_empty() {
            return Err(AcmeError::Setup("no names for the certificate".into()).into());
        }
        let http = AcmeHttp::new(&settings)?;
        let key = StoredKey::load_or_create(&dir, &config.domain)?;
        let certificate_path = certificate_path(&dir, &config.domain, &settings.directory);
        let kept = read_kept(&certificate_path, &key, &names);
        let (tls, issued) = match kept {
            Some((chain, issued)) => (
                TlsIdentity::from_parts(
                    chain,
                    key.private_key(),
                    key.pin(),
                    certificate_path.clone(),
                    Origin::Acme,
                    false,
                )?,
                Some(issued),
            ),
            None => (TlsIdentity::from_config(config)?, None),
        };
        let (status, _) = watch::channel(AcmeStatus {
            issued,
            ..AcmeStatus::default()
        });
        let acme = Self {
            inner: Arc::new(Inner {
                account_path: account_path(&dir, &settings.directory),
                directory: settings.directory,
                contact: settings.contact,
                names,
                dir,
                certificate_path,
                key,
                tls: tls.clone(),
                http,
                account: tokio::sync::Mutex::new(None),
                challenges: Mutex::new(HashMap::new()),
                status,
                wake: Notify::new(),
            }),
        };
        Ok((tls, acme))
    }

    /// The names on the certificate.
    pub fn names(&self) -> &[String] {
        &self.inner.names
    }

    /// The directory URL.
    pub fn directory(&self) -> &str {
        &self.inner.directory
    }

    /// Where ACME stands now.
    pub fn status(&self) -> AcmeStatus {
        self.inner.status.borrow().clone()
    }

    /// Follows the status (a new value after every order, good or failed).
    pub fn subscribe(&self) -> watch::Receiver<AcmeStatus> {
        self.inner.status.subscribe()
    }

    /// Orders a certificate now (whatever the current one's dates), installs it and
    /// keeps it. The key, and so the pin, stay the same.
    pub async fn renew(&self) -> Result<Issued, AcmeError> {
        let result = self.attempt().await;
        // The renewal task plans again from the new dates.
        self.inner.wake.notify_one();
        result
    }

    /// One order, its result recorded in the status.
    async fn attempt(&self) -> Result<Issued, AcmeError> {
        let result = self.order().await;
        self.inner.status.send_modify(|status| match &result {
            Ok(issued) => {
                status.issued = Some(issued.clone());
                status.last_error = None;
                status.orders = status.orders.saturating_add(1);
            }
            Err(e) => status.last_error = Some(e.to_string()),
        });
        result
    }

    /// The renewal task: orders when there is no certificate yet or it is due, retries
    /// failed orders with a growing delay, forever (it is aborted with the server).
    pub(crate) async fn run(self) {
        let mut retry = RETRY_FIRST;
        let mut next_try: Option<SystemTime> = None;
        loop {
            let due = match (&self.inner.status.borrow().issued, next_try) {
                (_, Some(at)) => at,
                (Some(issued), None) => issued.renew_at,
                (None, None) => SystemTime::now(),
            };
            let now = SystemTime::now();
            if now >= due {
                match self.attempt().await {
                    Ok(issued) => {
                        tracing::info!(
                            names = ?self.inner.names,
                            valid_until = %utc(issued.not_after),
                            renew_at = %utc(issued.renew_at),
                            "ACME certificate installed"
                        );
                        retry = RETRY_FIRST;
                        next_try = None;
                    }
                    Err(e) => {
                        tracing::warn!(retry_in_secs = retry.as_secs(), "{e}");
                        next_try = Some(SystemTime::now() + retry);
                        retry = retry.saturating_mul(2).min(RETRY_MAX);
                    }
                }
                continue;
            }
            let wait = due
                .duration_since(now)
                .unwrap_or_default()
                .min(WAKE_AT_LEAST);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // A forced renewal happened: plan from its result.
                () = self.inner.wake.notified() => next_try = None,
            }
        }
    }

    async fn order(&self) -> Result<Issued, AcmeError> {
        let inner = &self.inner;
        let mut account_slot = inner.account.lock().await;
        let account = match account_slot.as_ref() {
            Some(account) => account.clone(),
            None => {
                let account = self.account().await?;
                *account_slot = Some(account.clone());
                account
            }
        };
        let identifiers: Vec<Identifier> = inner
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(failed)?;
        let mut tokens = Tokens {
            challenges: &inner.challenges,
            tokens: Vec::new(),
        };
        {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.map_err(failed)?;
                match authorization.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(AcmeError::Order(format!(
                            "the authorization for {} is {other:?}",
                            authorization.identifier()
                        )))
                    }
                }
                let name = authorization.identifier().to_string();
                let mut challenge =
                    authorization
                        .challenge(ChallengeType::Http01)
                        .ok_or_else(|| {
                            AcmeError::Order(format!(
                                "the CA offers no HTTP-01 challenge for {name}"
                            ))
                        })?;
                tokens.add(
                    challenge.token.clone(),
                    challenge.key_authorization().as_str().to_owned(),
                );
                challenge.set_ready().await.map_err(failed)?;
            }
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(ORDER_TIMEOUT);
        match order.poll_ready(&retries).await.map_err(failed)? {
            OrderStatus::Ready => {}
            status => return Err(AcmeError::Order(explain(&mut order, status).await)),
        }
        let mut params = rcgen::CertificateParams::new(inner.names.clone())
            .map_err(|e| AcmeError::Order(format!("cannot make the request: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&inner.key.pair)
            .map_err(|e| AcmeError::Order(format!("cannot make the request: {e}")))?;
        order.finalize_csr(csr.der()).await.map_err(failed)?;
        let pem = order.poll_certificate(&retries).await.map_err(failed)?;
        drop(tokens);
        self.install(&pem)
    }

    /// Loads the kept account, or creates one at the CA and keeps it.
    async fn account(&self) -> Result<Account, AcmeError> {
        let inner = &self.inner;
        let builder = || Account::builder_with_http(Box::new(inner.http.clone()));
        match std::fs::read_to_string(&inner.account_path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let credentials: AccountCredentials =
                    serde_json::from_str(&text).map_err(|_| {
                        AcmeError::Setup(format!(
                            "{} is not an ACME account file",
                            inner.account_path.display()
                        ))
                    })?;
                return builder()
                    .from_credentials(credentials)
                    .await
                    .map_err(failed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AcmeError::Setup(format!(
                    "cannot read {}: {e}",
                    inner.account_path.display()
                )))
            }
        }
        let contact = inner.contact.as_ref().map(|c| {
            if c.starts_with("mailto:") {
                c.clone()
            } else {
                format!("mailto:{c}")
            }
        });
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                inner.directory.clone(),
                None,
            )
            .await
            .map_err(failed)?;
        let json = Zeroizing::new(
            serde_json::to_string(&credentials)
                .map_err(|e| AcmeError::Install(format!("cannot keep the account: {e}")))?,
        );
        store::private_dir(&inner.dir)
            .and_then(|()| store::replace(&inner.account_path, json.as_bytes()))
            .map_err(|e| {
                AcmeError::Install(format!(
                    "cannot write {}: {e}",
                    inner.account_path.display()
                ))
            })?;
        tracing::info!(directory = %inner.directory, "ACME account created");
        Ok(account)
    }

    /// Checks, keeps and serves a chain the CA issued.
    fn install(&self, pem: &str) -> Result<Issued, AcmeError> {
        let inner = &self.inner;
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| AcmeError::Install("the CA sent no readable certificate".into()))?;
        let issued = check(&chain, &inner.key, &inner.names, &inner.certificate_path)
            .map_err(AcmeError::Install)?;
        store::replace(&inner.certificate_path, pem.as_bytes()).map_err(|e| {
            AcmeError::Install(format!(
                "cannot write {}: {e}",
                inner.certificate_path.display()
            ))
        })?;
        inner
            .tls
            .install(chain, inner.key.private_key())
            .map_err(|e| AcmeError::Install(e.to_string()))?;
        Ok(issued)
    }

    /// The key authorization for an HTTP-01 token, while its order is pending.
    fn key_authorization(&self, token: &str) -> Option<String> {
        lock(&self.inner.challenges).get(token).cloned()
    }
}

/// Removes the order's tokens from the challenge listener however the order ends.
struct Tokens<'a> {
    challenges: &'a Mutex<HashMap<String, String>>,
    tokens: Vec<String>,
}

impl Tokens<'_> {
    fn add(&mut self, token: String, key_authorization: String) {
        lock(self.challenges).insert(token.clone(), key_authorization);
        self.tokens.push(token);
    }
}

impl Drop for Tokens<'_> {
    fn drop(&mut self) {
        let mut challenges = lock(self.challenges);
        for token in &self.tokens {
            challenges.remove(token);
        }
    }
}

/// The error and its causes ("client error (Connect): dns error: …"): the CA's problem
/// document, or why it could not be reached.
fn failed(e: instant_acme::Error) -> AcmeError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    AcmeError::Order(text)
}

/// Why an order ended `status` rather than ready: the CA's word on each failed challenge.
async fn explain(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{}: {problem}", state.identifier()));
            }
        }
    }
    if reasons.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("the order is {status:?}: {}", reasons.join("; "))
    }
}

/// Checks an issued chain: for our key, for every name, readable dates.
fn check(
    chain: &[CertificateDer<'static>],
    key: &StoredKey,
    names: &[String],
    path: &Path,
) -> Result<Issued, String> {
    let first = chain.first().ok_or("the CA sent no certificate")?;
    let pin = cryptocat_link::Pin::of_certificate(first)
        .map_err(|_| "the CA's certificate cannot be read".to_owned())?;
    if !pin.matches(&key.pin()) {
        return Err("the CA's certificate is not for the server's key".into());
    }
    let parsed = webpki::EndEntityCert::try_from(first)
        .map_err(|_| "the CA's certificate cannot be read".to_owned())?;
    for name in names {
        let server_name = rustls::pki_types::ServerName::try_from(name.as_str())
            .map_err(|_| format!("{name} is not a DNS name"))?;
        parsed
            .verify_is_valid_for_subject_name(&server_name)
            .map_err(|_| format!("the certificate does not name {name}"))?;
    }
    let (not_before, not_after) = validity(first)?;
    let lifetime = not_after
        .duration_since(not_before)
        .map_err(|_| "the certificate ends before it starts".to_owned())?;
    Ok(Issued {
        certificate: first.clone(),
        path: path.to_owned(),
        not_before,
        not_after,
        renew_at: not_before + lifetime / 3 * 2,
    })
}

/// The certificate's notBefore and notAfter.
fn validity(cert: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), String> {
    use x509_cert::der::Decode as _;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| "the certificate's dates cannot be read".to_owned())?;
    let validity = parsed.tbs_certificate.validity;
    Ok((
        validity.not_before.to_system_time(),
        validity.not_after.to_system_time(),
    ))
}

/// A kept ACME chain that is for the key, covers the names and has not expired.
fn read_kept(
    path: &Path,
    key: &StoredKey,
    names: &[String],
) -> Option<(Vec<CertificateDer<'static>>, Issued)> {
    let pem = std::fs::read(path).ok()?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let issued = check(&chain, key, names, path).ok()?;
    (SystemTime::now() < issued.not_after).then_some((chain, issued))
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ` for the logs.
fn utc(t: SystemTime) -> String {
    x509_cert::der::DateTime::from_system_time(t).map_or_else(|_| "?".to_owned(), |d| d.to_string())
}

// ---------------------------------------------------------------------------------------
// HTTPS to the CA

/// The HTTP client instant-acme talks to the CA with: hyper over rustls (ring), trusting
/// the system's roots and the optional `directory_ca`, each request bounded in time.
#[derive(Clone)]
struct AcmeHttp {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<HttpConnector>,
        BodyWrapper<Bytes>,
    >,
}

impl AcmeHttp {
    fn new(settings: &AcmeConfig) -> Result<Self, AcmeError> {
        if !settings
            .directory
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            return Err(AcmeError::Setup(
                "the directory URL must be https://".into(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &settings.directory_ca {
            let extra = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| AcmeError::Setup(format!("cannot read {}: {e}", path.display())))?;
            if extra.is_empty() {
                return Err(AcmeError::Setup(format!(
                    "no certificate in {}",
                    path.display()
                )));
            }
            let (_, refused) = roots.add_parsable_certificates(extra);
            if refused > 0 {
                return Err(AcmeError::Setup(format!(
                    "a certificate in {} is not usable as a CA",
                    path.display()
                )));
            }
        }
        if roots.is_empty() {
            return Err(AcmeError::Setup(
                "no trusted certificate authorities to check the directory with: install \
                 ca-certificates or give directory_ca"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> StdPin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.client.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str("the CA did not answer in time")),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP-01 challenge listener

/// Serves `GET /.well-known/acme-challenge/TOKEN` on `listener` until aborted.
pub(crate) async fn serve_challenges(listener: TcpListener, acme: Acme) {
    let slots = Arc::new(Semaphore::new(CHALLENGE_CONNECTIONS));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "challenge listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let acme = acme.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = challenge_answer(&acme, &req);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(false)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            drop(slot);
        });
    }
}

fn challenge_answer<B>(acme: &Acme, req: &Request<B>) -> Response<Full<Bytes>> {
    let found = (req.method() == Method::GET || req.method() == Method::HEAD)
        .then(|| req.uri().path().strip_prefix(CHALLENGE_PATH))
        .flatten()
        .filter(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .and_then(|token| acme.key_authorization(token));
    let (status, body) = match found {
        Some(key_authorization) => {
            tracing::debug!("ACME challenge answered");
            (StatusCode::OK, Bytes::from(key_authorization))
        }
        None => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tag: &str) -> (Config, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-acme-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::new("example.org", SocketAddr::from(([127, 0, 0, 1], 0)));
        config.state_dir = Some(dir.clone());
        config.acme = Some(AcmeConfig {
            directory: "https://acme.invalid/dir".into(),
            ..AcmeConfig::default()
        });
        (config, dir)
    }

    #[test]
    fn names_default_to_the_domain_and_the_public_host() {
        let (mut config, _) = config("names");
        assert_eq!(names(&config), vec!["example.org".to_owned()]);
        config.public_host = Some("Chat.Example.org.".into());
        assert_eq!(names(&config), vec!["example.org", "chat.example.org"]);
        if let Some(acme) = &mut config.acme {
            acme.domains = vec!["a.example".into(), "a.example".into(), "b.example".into()];
        }
        assert_eq!(names(&config), vec!["a.example", "b.example"]);
    }

    /// Before any order: the self-signed certificate of the kept key, so the pin is the
    /// one every later ACME certificate will have.
    #[test]
    fn serves_the_kept_keys_self_signed_certificate_until_the_first_order() {
        let (config, dir) = config("first");
        let (tls, acme) = Acme::prepare(&config).unwrap();
        assert_eq!(tls.origin, Origin::Acme);
        assert!(tls.generated);
        assert!(acme.status().issued.is_none());
        let plain = TlsIdentity::from_config(&{
            let mut c = config.clone();
            c.acme = None;
            c
        })
        .unwrap();
        assert_eq!(tls.pin(), plain.pin());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A chain kept from an earlier order is served at start when it is for the key and
    /// the names; renewal is planned at two thirds of its lifetime.
    #[test]
    fn a_kept_certificate_is_served_and_checked() {
        let (config, dir) = config("kept");
        let key = StoredKey::load_or_create(&dir, "example.org").unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["example.org".into()]).unwrap();
        let start = SystemTime::now() - Duration::from_secs(24 * 3600);
        leaf.not_before = start.into();
        leaf.not_after = (start + Duration::from_secs(90 * 24 * 3600)).into();
        let leaf = leaf.signed_by(&key.pair, &ca, &ca_key).unwrap();
        let path = certificate_path(&dir, "example.org", "https://acme.invalid/dir");
        std::fs::write(&path, format!("{}{}", leaf.pem(), ca.pem())).unwrap();

        let (tls, acme) = Acme::prepare(&config).unwrap();
        let issued = acme.status().issued.unwrap();
        assert_eq!(&tls.certificate, leaf.der());
        assert!(!tls.generated);
        assert_eq!(tls.certificate_path, path);
        let lifetime = issued.not_after.duration_since(issued.not_before).unwrap();
        assert_eq!(lifetime, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(
            issued.renew_at.duration_since(issued.not_before).unwrap(),
            Duration::from_secs(60 * 24 * 3600)
        );

        // Not for these names: not served.
        let mut other = config.clone();
        other.public_host = Some("chat.example.org".into());
        let (tls, acme) = Acme::prepare(&other).unwrap();
        assert!(acme.status().issued.is_none() && tls.generated);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn settings_errors_are_clear() {
        let (mut config, dir) = config("errors");
        if let Some(acme) = &mut config.acme {
            acme.directory = "http://acme.invalid/dir".into();
        }
        let err = Acme::prepare(&config).unwrap_err().to_string();
        assert!(err.contains("must be https://"), "{err}");
        if let Some(acme) = &mut config.acme {
            acme.directory = "https://acme.invalid/dir".into();
            acme.directory_ca = Some(dir.join("missing.pem"));
        }
        let err = Acme::prepare(&config).unwrap_err().to_string();
        assert!(err.starts_with("ACME set-up: cannot read"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_challenge_listener_answers_only_pending_tokens() {
        let (config, dir) = config("listener");
        let (_, acme) = Acme::prepare(&config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_challenges(listener, acme.clone()));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            tcp.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/.well-known/acme-challenge/abc")
            .await
            .starts_with("HTTP/1.1 404"));
        let mut tokens = Tokens {
            challenges: &acme.inner.challenges,
            tokens: Vec::new(),
        };
        tokens.add("abc".into(), "abc.thumb".into());
        let answer = get("/.well-known/acme-challenge/abc").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nabc.thumb"), "{answer}");
        assert!(get("/.well-known/acme-challenge/ab")
            .await
            .starts_with("HTTP/1.1 404"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        drop(tokens);
        assert!(get("/.well-known/acme-challenge/abc")
            .await
            .starts_with("HTTP/1.1 404"));
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
