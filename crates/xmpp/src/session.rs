//! Getting from a protected [`ElementStream`] to a bound session: the `X-CRYPTOCAT-KEY`
//! key challenge when the server offers it and an identity is given (no registration:
//! the account is the key's), else XEP-0077 in-band registration and SASL SCRAM (SHA-256 or
//! SHA-1, with `-PLUS` channel binding where both sides can: rsasl, RFC 5802/7677/9266, the
//! server signature verified); then resource binding.
//! Works on any framing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::keyauth::{self, Challenge, ChannelBinding, ClientFirst, KeyAuthError};
use minidom::Element;
use rand_core::{OsRng, RngCore as _};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::transport::{ElementStream, TransportError};
use crate::xml::escape;

/// SASL namespace.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Bind namespace.
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// In-band registration namespace.
pub const NS_REGISTER: &str = "jabber:iq:register";
/// Stanza error namespace.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Smallest SCRAM iteration count we accept (RFC 7677 recommends at least 4096).
pub const MIN_ITERATIONS: u32 = 4096;
/// Largest iteration count we compute (a hostile server could ask for billions).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// An account: username (the JID localpart) and password. Debug shows neither.
pub struct Credentials {
    /// The localpart.
    pub username: String,
    /// The password (zeroized on drop).
    pub password: Zeroizing<String>,
}

impl Credentials {
    /// Given credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// A random account as Cryptocat made them: a 16-byte hex username and a 32-byte
    /// random password (base64), both from the OS RNG.
    pub fn random() -> Self {
        let mut name = [0u8; 16];
        OsRng.fill_bytes(&mut name);
        let mut pw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(pw.as_mut());
        Self {
            username: hex::encode(name),
            password: Zeroizing::new(STANDARD.encode(pw.as_ref())),
        }
    }

    fn duplicate(&self) -> Self {
        Self {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        self.duplicate()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// Why SCRAM login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server offers no SCRAM mechanism (we never use PLAIN or anything weaker).
    #[error("the server offers no SCRAM mechanism (SCRAM-SHA-1 or SCRAM-SHA-256; never PLAIN)")]
    MechanismUnavailable,
    /// The server refused the credentials (`not-authorized`, ...).
    #[error("the server refused the login: {condition}")]
    Refused {
        /// The SASL failure condition.
        condition: String,
    },
    /// The server's nonce does not extend ours.
    #[error("the server's SCRAM nonce is invalid")]
    BadNonce,
    /// The iteration count is outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    #[error("the server asked for {0} SCRAM iterations, outside the accepted range")]
    BadIterations(u32),
    /// The server's signature is wrong: it does not know our password (an impostor).
    #[error("the server's SCRAM signature is wrong")]
    BadServerSignature,
    /// A SCRAM message could not be parsed.
    #[error("the server sent a malformed SCRAM message")]
    Malformed,
    /// The key challenge was refused on our side: a challenge for another domain, a
    /// channel binding we cannot give, a malformed message.
    #[error("key challenge: {0}")]
    KeyChallenge(KeyAuthError),
    /// The server refused our key challenge answer (`not-authorized`, ...). Distinct from
    /// [`AuthError::Refused`] so that a client never answers it by registering a password
    /// account instead.
    #[error("the server refused the key challenge: {condition}")]
    KeyRefused {
        /// The SASL failure condition.
        condition: String,
    },
    /// The server reported success with another localpart than the one our key derives:
    /// it did not bind the account to our key.
    #[error("the server bound another account than our key's")]
    WrongLocalpart,
}

/// Why getting a session failed (after the transport was up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The element stream failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// In-band registration was refused (`conflict`, `resource-constraint`, ...).
    #[error("registration refused: {condition}{}", registration_hint(condition))]
    Registration {
        /// The stanza error condition.
        condition: String,
    },
    /// The server does not offer in-band registration.
    #[error("the server does not offer in-band registration")]
    RegistrationUnavailable,
    /// Login failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Resource binding failed.
    #[error("resource binding failed: {condition}")]
    Bind {
        /// The stanza error condition.
        condition: String,
    },
}

/// What an operator can do about a refused registration.
fn registration_hint(condition: &str) -> &'static str {
    match condition {
        "resource-constraint" | "not-acceptable" | "policy-violation" => {
            " (the server limits how often one address may register: its operator must \
             allow it, e.g. ejabberd's registration_timeout: infinity; see docs/deploy.md)"
        }
        "not-allowed" | "forbidden" => {
            " (the server does not let new accounts register: its operator must open \
             in-band registration; see docs/deploy.md)"
        }
        _ => "",
    }
}

/// The defined condition of a stanza error reply (`<error><condition/></error>`).
pub fn stanza_error_condition(el: &Element) -> String {
    el.children()
        .find(|c| c.name() == "error")
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned())
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}-{}", hex::encode(b))
}

/// Waits for the iq reply with `id`, skipping anything else.
async fn iq_reply(stream: &mut dyn ElementStream, id: &str) -> Result<Element, TransportError> {
    loop {
        let el = stream.next().await?;
        if el.name() == "iq" && el.attr("id") == Some(id) {
            return Ok(el);
        }
    }
}

/// XEP-0077: registers `creds` on the stream whose `features` were just received.
pub async fn register(
    stream: &mut dyn ElementStream,
    features: &Element,
    creds: &Credentials,
) -> Result<(), SessionError> {
    if features
        .get_child("register", "http://jabber.org/features/iq-register")
        .is_none()
    {
        return Err(SessionError::RegistrationUnavailable);
    }
    let id = random_id("reg");
    stream
        .send(format!(
            "<iq type='set' id='{id}'><query xmlns='{NS_REGISTER}'><username>{}</username>\
             <password>{}</password></query></iq>",
            escape(&creds.username),
            escape(&creds.password)
        ))
        .await?;
    let reply = iq_reply(stream, &id).await?;
    match reply.attr("type") {
        Some("result") => Ok(()),
        _ => Err(SessionError::Registration {
            condition: stanza_error_condition(&reply),
        }),
    }
}

fn sasl_failure(el: &Element) -> AuthError {
    AuthError::Refused {
        condition: el
            .children()
            .find(|c| c.ns() == NS_SASL && c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".to_owned()),
    }
}

/// A SCRAM server-first message (RFC 5802 §5.1), checked: the nonce extends ours, the salt
/// is base64, the iteration count is within [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`], and no
/// mandatory extension (`m=`) is present.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFirst<'a> {
    /// The combined nonce (ours followed by the server's).
    pub nonce: &'a str,
    /// The salt.
    pub salt: Vec<u8>,
    /// The iteration count.
    pub iterations: u32,
}

/// Parses the server-first message `text` of an exchange whose client nonce is `cnonce`
/// (network input: bounded by the stream's stanza size; never panics).
pub fn parse_server_first<'a>(text: &'a str, cnonce: &str) -> Result<ServerFirst<'a>, AuthError> {
    let (mut nonce, mut salt, mut iterations) = (None, None, None);
    for part in text.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            nonce = Some(v);
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = STANDARD.decode(v).ok();
        } else if let Some(v) = part.strip_prefix("i=") {
            iterations = v.parse::<u32>().ok();
        } else if part.starts_with("m=") {
            return Err(AuthError::Malformed);
        }
    }
    let (nonce, salt, iterations) = match (nonce, salt, iterations) {
        (Some(n), Some(s), Some(i)) => (n, s, i),
        _ => return Err(AuthError::Malformed),
    };
    if cnonce.is_empty() || !nonce.starts_with(cnonce) || nonce.len() <= cnonce.len() {
        return Err(AuthError::BadNonce);
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(AuthError::BadIterations(iterations));
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// Most mechanisms read from a server's `<mechanisms/>`.
const MAX_MECHANISMS: usize = 32;

/// The SASL mechanisms a server offers (at most [`MAX_MECHANISMS`]).
pub fn offered_mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", NS_SASL)
        .map(|m| {
            m.children()
                .filter(|c| c.name() == "mechanism")
                .take(MAX_MECHANISMS)
                .map(|c| c.text().trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the server lets us bind SCRAM to the channel with `tls-exporter` (RFC 9266):
/// it must not list its channel-binding types (XEP-0440), or list that one.
fn server_takes_exporter(features: &Element) -> bool {
    match features.get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0") {
        None => true,
        Some(list) => list
            .children()
            .take(MAX_MECHANISMS)
            .any(|c| c.attr("type") == Some("tls-exporter")),
    }
}

/// What rsasl asks of us: the account's name and password (a copy, owned by rsasl's
/// configuration and zeroized when it is dropped), and whether we can bind the exchange to
/// the channel.
struct ScramCredentials {
    creds: Credentials,
    channel_binding: bool,
}

impl rsasl::callback::SessionCallback for ScramCredentials {
    fn callback(
        &self,
        _session: &rsasl::callback::SessionData,
        _context: &rsasl::callback::Context<'_>,
        request: &mut rsasl::callback::Request<'_>,
    ) -> Result<(), rsasl::prelude::SessionError> {
        request
            .satisfy::<rsasl::property::AuthId>(self.creds.username.as_str())?
            .satisfy::<rsasl::property::Password>(self.creds.password.as_bytes())?;
        Ok(())
    }

    fn enable_channel_binding(&self) -> bool {
        self.channel_binding
    }
}

/// The stream's `tls-exporter` value, the one channel binding we give.
struct Exporter(Option<[u8; 32]>);

impl rsasl::prelude::ChannelBindingCallback for Exporter {
    fn get_cb_data(&self, cbname: &str) -> Option<&[u8]> {
        match (cbname, &self.0) {
            ("tls-exporter", Some(data)) => Some(data.as_slice()),
            _ => None,
        }
    }
}

/// The client nonce (`r=`) of a SCRAM client-first message.
fn client_nonce(first: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(first).ok()?;
    text.split(',')
        .find_map(|p| p.strip_prefix("r="))
        .map(str::to_owned)
}

/// One SASL payload element's data (`=` or nothing for empty).
fn sasl_data(el: &Element) -> Result<Vec<u8>, AuthError> {
    let t = el.text();
    let t = t.trim();
    if t.is_empty() || t == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(t).map_err(|_| AuthError::Malformed)
}

/// SASL SCRAM through rsasl: the best mechanism both sides have, in the order
/// SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1 (never PLAIN: it is
/// not compiled in). The `-PLUS` variants bind the exchange to the stream's TLS exporter
/// (RFC 9266) when the stream has one and the server takes it; a client that could bind
/// but finds no `-PLUS` offered says so (`y` flag, RFC 5802 section 6), so a server that
/// did offer it sees the downgrade. Before rsasl reads the server's first message it is
/// checked by [`parse_server_first`] (our nonce extended, iterations within bounds).
/// The server's signature is verified. Returns the mechanism used.
pub async fn login_scram(
    stream: &mut dyn ElementStream,
    features: &Element,
    creds: &Credentials,
) -> Result<String, SessionError> {
    use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};
    let offered = offered_mechanisms(features);
    let names: Vec<&Mechname> = offered
        .iter()
        .filter_map(|m| Mechname::parse(m.as_bytes()).ok())
        .collect();
    let exporter = stream.channel_binding();
    let channel_binding = exporter.is_some() && server_takes_exporter(features);
    let callback = ScramCredentials {
        creds: creds.clone(),
        channel_binding,
    };
    let config = SASLConfig::builder()
        .with_defaults()
        .with_callback(callback)
        .map_err(|_| AuthError::MechanismUnavailable)?;
    let exporter = Exporter(exporter.filter(|_| channel_binding));
    let mut session = SASLClient::with_cb(config, exporter)
        .start_suggested(&names)
        .map_err(|_| AuthError::MechanismUnavailable)?;
    let mechanism = session.get_mechname().as_str().to_owned();
    let step = |session: &mut rsasl::prelude::Session<_, Exporter>, input: Option<&[u8]>| {
        let mut out = Vec::new();
        session
            .step(input, &mut out)
            .map(|state| (state, out))
            .map_err(|e| {
                tracing::debug!("SCRAM step refused: {e}");
            })
    };
    let (_, first) = step(&mut session, None).map_err(|()| AuthError::Malformed)?;
    let cnonce = client_nonce(&first).ok_or(AuthError::Malformed)?;
    stream
        .send(format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
            escape(&mechanism),
            STANDARD.encode(&first)
        ))
        .await?;
    let challenge = stream.next().await?;
    if challenge.is("failure", NS_SASL) {
        return Err(sasl_failure(&challenge).into());
    }
    if !challenge.is("challenge", NS_SASL) {
        return Err(AuthError::Malformed.into());
    }
    let server_first = sasl_data(&challenge)?;
    let text = std::str::from_utf8(&server_first).map_err(|_| AuthError::Malformed)?;
    // Our checks first: rsasl would compute any iteration count it is given.
    parse_server_first(text, &cnonce)?;
    let (_, client_final) =
        step(&mut session, Some(&server_first)).map_err(|()| AuthError::Malformed)?;
    stream
        .send(format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(&client_final)
        ))
        .await?;
    let mut outcome = stream.next().await?;
    // A server may send the server-final as one more challenge, answered with an empty
    // response, before <success/>.
    let server_final = if outcome.is("challenge", NS_SASL) {
        let data = sasl_data(&outcome)?;
        stream
            .send(format!("<response xmlns='{NS_SASL}'/>"))
            .await?;
        outcome = stream.next().await?;
        Some(data)
    } else {
        None
    };
    if outcome.is("failure", NS_SASL) {
        return Err(sasl_failure(&outcome).into());
    }
    if !outcome.is("success", NS_SASL) {
        return Err(AuthError::Malformed.into());
    }
    let server_final = match server_final {
        Some(data) => data,
        None => sasl_data(&outcome)?,
    };
    match step(&mut session, Some(&server_final)) {
        Ok((State::Finished(_), _)) => Ok(mechanism),
        Ok((State::Running, _)) | Err(()) => Err(AuthError::BadServerSignature.into()),
    }
}

/// The key challenge login: what [`establish_with_key`] needs to prove the identity.
#[derive(Clone, Copy)]
pub struct KeyLogin<'a> {
    /// The session identity whose key the account is bound to.
    pub identity: &'a Identity,
    /// The domain we connected to (the challenge must name it).
    pub domain: &'a str,
}

impl std::fmt::Debug for KeyLogin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLogin(..)")
    }
}

/// Whether `features` offer `X-CRYPTOCAT-KEY`.
pub fn offers_key_challenge(features: &Element) -> bool {
    features
        .get_child("mechanisms", NS_SASL)
        .is_some_and(|m| m.children().any(|c| c.text() == keyauth::MECHANISM))
}

fn key_refused(el: &Element) -> AuthError {
    match sasl_failure(el) {
        AuthError::Refused { condition } => AuthError::KeyRefused { condition },
        other => other,
    }
}

/// SASL `X-CRYPTOCAT-KEY` (`docs/key-challenge.md`): sends the identity key, signs the
/// server's challenge (domain checked, the stream's `tls-exporter` value when the server
/// asks for it) and checks that the server bound the localpart our key derives.
/// Returns that localpart.
pub async fn login_key(
    stream: &mut dyn ElementStream,
    features: &Element,
    key: KeyLogin<'_>,
) -> Result<String, SessionError> {
    if !offers_key_challenge(features) {
        return Err(AuthError::MechanismUnavailable.into());
    }
    let first = ClientFirst::new(key.identity).encode();
    stream
        .send(format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
            keyauth::MECHANISM,
            STANDARD.encode(first)
        ))
        .await?;
    let challenge = stream.next().await?;
    if challenge.is("failure", NS_SASL) {
        return Err(key_refused(&challenge).into());
    }
    if !challenge.is("challenge", NS_SASL) {
        return Err(AuthError::Malformed.into());
    }
    let data = sasl_data(&challenge)?;
    let parsed = Challenge::decode(&data).map_err(AuthError::KeyChallenge)?;
    let binding = match stream.channel_binding() {
        Some(exporter) => ChannelBinding::TlsExporter(exporter),
        None => ChannelBinding::None,
    };
    let signature = match keyauth::respond(key.identity, key.domain, &parsed, &binding) {
        Ok(sig) => sig,
        Err(e) => {
            let _ = stream.send(format!("<abort xmlns='{NS_SASL}'/>")).await;
            return Err(AuthError::KeyChallenge(e).into());
        }
    };
    stream
        .send(format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(signature)
        ))
        .await?;
    let outcome = stream.next().await?;
    if outcome.is("failure", NS_SASL) {
        return Err(key_refused(&outcome).into());
    }
    if !outcome.is("success", NS_SASL) {
        return Err(AuthError::Malformed.into());
    }
    let expected = keyauth::localpart(&key.identity.verifying_key());
    let got = sasl_data(&outcome)?;
    if got.ct_eq(expected.as_bytes()).unwrap_u8() != 1 {
        return Err(AuthError::WrongLocalpart.into());
    }
    Ok(expected)
}

/// Restarts the stream after SASL, binds a resource, and returns the full JID.
pub async fn bind(stream: &mut dyn ElementStream) -> Result<String, SessionError> {
    let features = stream.open().await?;
    bind_offered(stream, &features).await
}

/// Binds a resource on a stream restarted after SASL whose `features` were just received.
pub async fn bind_offered(
    stream: &mut dyn ElementStream,
    features: &Element,
) -> Result<String, SessionError> {
    if features.get_child("bind", NS_BIND).is_none() {
        return Err(TransportError::Protocol("no resource binding offered").into());
    }
    let mut r = [0u8; 4];
    OsRng.fill_bytes(&mut r);
    let id = random_id("bind");
    stream
        .send(format!(
            "<iq type='set' id='{id}'><bind xmlns='{NS_BIND}'><resource>cryptocat-{}</resource></bind></iq>",
            hex::encode(r)
        ))
        .await?;
    let reply = iq_reply(stream, &id).await?;
    if reply.attr("type") != Some("result") {
        return Err(SessionError::Bind {
            condition: stanza_error_condition(&reply),
        });
    }
    let jid = reply
        .get_child("bind", NS_BIND)
        .and_then(|b| b.get_child("jid", NS_BIND))
        .map(Element::text)
        .ok_or(TransportError::Protocol("bind result without a JID"))?;
    // RFC 3921 session establishment, where a server still requires it.
    if let Some(session) = features.get_child("session", "urn:ietf:params:xml:ns:xmpp-session") {
        if session.children().all(|c| c.name() != "optional") {
            let id = random_id("sess");
            stream
                .send(format!(
                    "<iq type='set' id='{id}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
                ))
                .await?;
            let reply = iq_reply(stream, &id).await?;
            if reply.attr("type") != Some("result") {
                return Err(SessionError::Bind {
                    condition: stanza_error_condition(&reply),
                });
            }
        }
    }
    Ok(jid)
}

/// Registers (when `register` is set), logs in and binds on a freshly connected stream.
/// Returns the bound JID.
pub async fn establish(
    stream: &mut dyn ElementStream,
    creds: &Credentials,
    register_first: bool,
) -> Result<String, SessionError> {
    establish_with_key(stream, creds, register_first, None).await
}

/// As [`establish`], but with the key challenge first when `key` is given and the server
/// offers `X-CRYPTOCAT-KEY` (then `creds` are not used and nothing is registered).
pub async fn establish_with_key(
    stream: &mut dyn ElementStream,
    creds: &Credentials,
    register_first: bool,
    key: Option<KeyLogin<'_>>,
) -> Result<String, SessionError> {
    let features = authenticate(stream, creds, register_first, key).await?;
    bind_offered(stream, &features).await
}

/// How a connection logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// `X-CRYPTOCAT-KEY`: the account is our key's (the server checked that we hold it).
    Key,
    /// SCRAM with a registered password account; the mechanism used.
    Scram(String),
}

/// Logs in on a freshly connected stream (the key challenge when `key` is given and the
/// server offers it; else registration when `register_first` is set, then SCRAM), then
/// restarts it. Returns the features offered after authentication (binding, and stream
/// management where the server has it), before anything is bound or resumed.
pub async fn authenticate(
    stream: &mut dyn ElementStream,
    creds: &Credentials,
    register_first: bool,
    key: Option<KeyLogin<'_>>,
) -> Result<Element, SessionError> {
    authenticate_as(stream, creds, register_first, key)
        .await
        .map(|(features, _)| features)
}

/// As [`authenticate`], and says how it logged in.
pub async fn authenticate_as(
    stream: &mut dyn ElementStream,
    creds: &Credentials,
    register_first: bool,
    key: Option<KeyLogin<'_>>,
) -> Result<(Element, Login), SessionError> {
    let features = stream.open().await?;
    if let Some(key) = key.filter(|_| offers_key_challenge(&features)) {
        login_key(stream, &features, key).await?;
        return Ok((stream.open().await?, Login::Key));
    }
    if register_first {
        register(stream, &features, creds).await?;
    }
    let mechanism = match login_scram(stream, &features, creds).await {
        Ok(m) => m,
        Err(e) => {
            if register_first {
                // We made an account and cannot use it: ask the server to drop it
                // (XEP-0077 3.2 with the credentials, which some servers take before
                // authentication; the others refuse, and nothing is lost).
                cancel_unauthenticated(stream, creds).await;
            }
            return Err(e);
        }
    };
    tracing::debug!(mechanism, "logged in");
    Ok((stream.open().await?, Login::Scram(mechanism)))
}

/// How long to wait for the answer to a registration cancellation.
pub const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// XEP-0077 section 3.2: removes the logged-in account. Waits (at most [`CANCEL_WAIT`])
/// for the answer; the server may also just close the stream. Returns whether it
/// confirmed.
pub async fn cancel_registration(stream: &mut dyn ElementStream) -> bool {
    let id = random_id("unreg");
    let xml =
        format!("<iq type='set' id='{id}'><query xmlns='{NS_REGISTER}'><remove/></query></iq>");
    if stream.send(xml).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(CANCEL_WAIT, iq_reply(stream, &id)).await,
        Ok(Ok(reply)) if reply.attr("type") == Some("result")
    )
}

/// A cancellation before authentication, with the credentials (ejabberd takes it).
async fn cancel_unauthenticated(stream: &mut dyn ElementStream, creds: &Credentials) {
    let id = random_id("unreg");
    let xml = format!(
        "<iq type='set' id='{id}'><query xmlns='{NS_REGISTER}'><remove/><username>{}</username>\
         <password>{}</password></query></iq>",
        escape(&creds.username),
        escape(&creds.password)
    );
    if stream.send(xml).await.is_ok() {
        let _ = tokio::time::timeout(CANCEL_WAIT, iq_reply(stream, &id)).await;
    }
}

/// Service discovery namespace (info).
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery namespace (items).
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// What our room service advertises: it relays only Cryptocat payloads.
pub const FEATURE_CRYPTOCAT: &str = "urn:xmpp:cryptocat:1";
/// Most items of the server looked at when looking for its room service.
pub const MAX_DISCO_ITEMS: usize = 8;

/// A room (MUC) service found by service discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomService {
    /// Its domain.
    pub domain: String,
    /// Whether it says it relays only Cryptocat payloads (refuses plaintext).
    pub cryptocat: bool,
    /// Whether it asks joiners to prove their identity key (the room key proof,
    /// [`crate::room_key`]); joins then carry the proof whenever we have an identity.
    pub key_proof: bool,
}

async fn disco(
    stream: &mut dyn ElementStream,
    to: &str,
    ns: &str,
) -> Result<Option<Element>, TransportError> {
    let id = random_id("disco");
    stream
        .send(format!(
            "<iq type='get' id='{id}' to='{}'><query xmlns='{ns}'/></iq>",
            escape(to)
        ))
        .await?;
    let reply = iq_reply(stream, &id).await?;
    Ok((reply.attr("type") == Some("result"))
        .then(|| reply.get_child("query", ns).cloned())
        .flatten())
}

/// Finds the server's room service (XEP-0030): its items, the first whose identity is
/// `conference`/`text`. Looks at most [`MAX_DISCO_ITEMS`] items. `Ok(None)` when none.
pub async fn discover_room_service(
    stream: &mut dyn ElementStream,
    domain: &str,
) -> Result<Option<RoomService>, TransportError> {
    let Some(items) = disco(stream, domain, NS_DISCO_ITEMS).await? else {
        return Ok(None);
    };
    let jids: Vec<String> = items
        .children()
        .filter(|c| c.name() == "item" && c.attr("node").is_none())
        .filter_map(|c| c.attr("jid"))
        .filter(|j| !j.contains('@') && !j.contains('/') && j.len() <= 253)
        .take(MAX_DISCO_ITEMS)
        .map(str::to_owned)
        .collect();
    for jid in jids {
        let Some(info) = disco(stream, &jid, NS_DISCO_INFO).await? else {
            continue;
        };
        let is_rooms = info.children().any(|c| {
            c.name() == "identity"
                && c.attr("category") == Some("conference")
                && c.attr("type") == Some("text")
        });
        if is_rooms {
            let feature = |var: &str| {
                info.children()
                    .any(|c| c.name() == "feature" && c.attr("var") == Some(var))
            };
            return Ok(Some(RoomService {
                domain: jid.to_ascii_lowercase(),
                cryptocat: feature(FEATURE_CRYPTOCAT),
                key_proof: feature(crate::room_key::NS_ROOM_KEY),
            }));
        }
    }
    Ok(None)
}
