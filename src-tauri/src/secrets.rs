//! The OS keyring (crate `keyring` v3: Secret Service on Linux, e.g. GNOME Keyring or
//! KeePassXC; Keychain on macOS; Credential Manager on Windows): the only place the app
//! keeps anything across sessions, and only after the person opted in to "remember my
//! identity". Three entries under the service [`SERVICE`]:
//!
//! - `identity`: the identity's 32-byte seed ([`Identity::export_seed`]);
//! - `verified`: the fingerprints the person verified, with the nickname each had, as JSON;
//! - `settings`: the [`Settings`], as JSON.
//!
//! "Forget" ([`Keyring::forget`]) deletes all three. When no keyring answers, every call
//! fails with [`SecretsError::NoBackend`], which the UI shows as such.
//!
//! Credential Manager keeps at most 2,560 bytes per credential (`CRED_MAX_CREDENTIAL_BLOB_SIZE`),
//! about 25 verified contacts. On Windows a longer value is split over parts: `NAME` holds the
//! first 2,560 bytes, `NAME.part2` the next, and so on; a value goes on into the next part
//! exactly when a part is full. Elsewhere a value is one entry, as before.

use cryptocat_client::VerifiedContact;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::settings::Settings;

/// The keyring service name of the app's entries.
pub const SERVICE: &str = "cryptocat-desktop";
const IDENTITY: &str = "identity";
const VERIFIED: &str = "verified";
const SETTINGS: &str = "settings";

/// The most verified contacts kept (and read back).
pub const MAX_VERIFIED: usize = 4096;
/// The most bytes read back from one entry.
const MAX_ENTRY_BYTES: usize = 1 << 20;

/// The most bytes one keyring item holds, where the keyring has a small limit: Windows'
/// Credential Manager (`CRED_MAX_CREDENTIAL_BLOB_SIZE`).
#[cfg(windows)]
const ITEM_BYTES: Option<usize> = Some(2560);
/// The most bytes one keyring item holds: Secret Service and Keychain have no small limit.
#[cfg(not(windows))]
const ITEM_BYTES: Option<usize> = None;

/// Why the keyring could not be used (no user data in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No keyring answered (on Linux: no Secret Service on the session bus, or no bus).
    #[error(
        "no keyring is available: on Linux, start a Secret Service such as GNOME Keyring or \
         KeePassXC and unlock it"
    )]
    NoBackend,
    /// The keyring answered but refused or failed.
    #[error("the keyring refused the request")]
    Failed,
    /// An entry does not hold what the app wrote there.
    #[error("the keyring holds an entry this app cannot read")]
    Corrupt,
}

impl SecretsError {
    /// Stable snake_case code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoBackend => "keyring_unavailable",
            Self::Failed => "keyring_failed",
            Self::Corrupt => "keyring_corrupt",
        }
    }
}

impl From<keyring::Error> for SecretsError {
    fn from(e: keyring::Error) -> Self {
        match e {
            keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
                Self::NoBackend
            }
            keyring::Error::BadEncoding(_) => Self::Corrupt,
            _ => Self::Failed,
        }
    }
}

type Result<T> = std::result::Result<T, SecretsError>;

/// A verified contact as the `verified` entry keeps it.
#[derive(Serialize, Deserialize)]
struct StoredContact {
    nickname: String,
    /// 64 hex digits.
    fingerprint: String,
}

/// The app's entries in the OS keyring.
#[derive(Debug, Clone)]
pub struct Keyring {
    service: String,
    /// Values longer than this are split over parts (see the module's documentation).
    item_bytes: Option<usize>,
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new(SERVICE)
    }
}

impl Keyring {
    /// The entries under `service` (tests use a service name of their own).
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            item_bytes: ITEM_BYTES,
        }
    }

    /// The entries under `service`, each value split over parts of at most `item_bytes`
    /// bytes, as on Windows (tests use it with another keyring).
    pub fn with_item_limit(service: &str, item_bytes: usize) -> Self {
        Self {
            service: service.to_owned(),
            item_bytes: Some(item_bytes.max(1)),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        Ok(keyring::Entry::new(&self.service, name)?)
    }

    /// The most parts a value may have.
    fn max_parts(&self) -> usize {
        self.item_bytes
            .map_or(1, |limit| MAX_ENTRY_BYTES.div_ceil(limit))
    }

    /// The item holding part `index` (from 0) of value `name`.
    fn part_name(name: &str, index: usize) -> String {
        match index {
            0 => name.to_owned(),
            i => format!("{name}.part{}", i.saturating_add(1)),
        }
    }

    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let Some(first) = self.read_item(name)? else {
            return Ok(None);
        };
        let Some(limit) = self.item_bytes else {
            return Ok(Some(first));
        };
        let mut full = first.len() == limit;
        let mut parts = vec![first];
        while full {
            if parts.len() >= self.max_parts() {
                return Err(SecretsError::Corrupt);
            }
            let Some(part) = self.read_item(&Self::part_name(name, parts.len()))? else {
                break;
            };
            full = part.len() == limit;
            parts.push(part);
        }
        // One allocation of the final size: growing a buffer would leave copies behind.
        let mut value = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
        for part in &parts {
            value.extend_from_slice(part);
        }
        Ok(Some(value))
    }

    fn read_item(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.entry(name)?.get_secret() {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                if bytes.len() > MAX_ENTRY_BYTES {
                    return Err(SecretsError::Corrupt);
                }
                Ok(Some(bytes))
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let Some(limit) = self.item_bytes else {
            return Ok(self.entry(name)?.set_secret(bytes)?);
        };
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![bytes]
        } else {
            bytes.chunks(limit).collect()
        };
        if parts.len() > self.max_parts() {
            return Err(SecretsError::Failed);
        }
        for (index, part) in parts.iter().enumerate() {
            self.entry(&Self::part_name(name, index))?
                .set_secret(part)?;
        }
        // What a longer value left behind would otherwise be read as its continuation
        // (when the last part is full).
        self.delete_parts_from(name, parts.len())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.delete_item(name)?;
        if self.item_bytes.is_some() {
            self.delete_parts_from(name, 1)?;
        }
        Ok(())
    }

    /// Deletes parts `from`, `from + 1`, ... of `name` up to the first missing one.
    fn delete_parts_from(&self, name: &str, from: usize) -> Result<()> {
        for index in from..self.max_parts() {
            if !self.delete_item(&Self::part_name(name, index))? {
                break;
            }
        }
        Ok(())
    }

    /// Deletes one item; `false` when there was none.
    fn delete_item(&self, name: &str) -> Result<bool> {
        match self.entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps `identity` (its seed).
    pub fn save_identity(&self, identity: &Identity) -> Result<()> {
        let seed = identity.export_seed();
        self.write(IDENTITY, seed.as_slice())
    }

    /// The kept identity, if any, with a new instance tag and a profile from `now`.
    pub fn load_identity(&self, now: Timestamp) -> Result<Option<Identity>> {
        let Some(bytes) = self.read(IDENTITY)? else {
            return Ok(None);
        };
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretsError::Corrupt)?,
        );
        Ok(Some(Identity::from_exported_seed(
            &mut rand_core::OsRng,
            &seed,
            now,
        )))
    }

    /// Keeps the verified contacts (at most [`MAX_VERIFIED`], the last ones).
    pub fn save_verified(&self, contacts: &[VerifiedContact]) -> Result<()> {
        let skip = contacts.len().saturating_sub(MAX_VERIFIED);
        let stored: Vec<StoredContact> = contacts
            .iter()
            .skip(skip)
            .map(|c| StoredContact {
                nickname: c.nickname.clone(),
                fingerprint: hex::encode(c.fingerprint),
            })
            .collect();
        let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(|_| SecretsError::Failed)?);
        self.write(VERIFIED, &json)
    }

    /// The kept verified contacts (none when nothing is kept).
    pub fn load_verified(&self) -> Result<Vec<VerifiedContact>> {
        let Some(bytes) = self.read(VERIFIED)? else {
            return Ok(Vec::new());
        };
        let stored: Vec<StoredContact> =
            serde_json::from_slice(&bytes).map_err(|_| SecretsError::Corrupt)?;
        if stored.len() > MAX_VERIFIED {
            return Err(SecretsError::Corrupt);
        }
        stored
            .into_iter()
            .map(|c| {
                let mut fingerprint = [0u8; 32];
                hex::decode_to_slice(&c.fingerprint, &mut fingerprint)
                    .map_err(|_| SecretsError::Corrupt)?;
                Ok(VerifiedContact {
                    nickname: c.nickname,
                    fingerprint,
                })
            })
            .collect()
    }

    /// Keeps the settings.
    pub fn save_settings(&self, settings: &Settings) -> Result<()> {
        let json = serde_json::to_vec(settings).map_err(|_| SecretsError::Failed)?;
        self.write(SETTINGS, &json)
    }

    /// The kept settings, if any.
    pub fn load_settings(&self) -> Result<Option<Settings>> {
        let Some(bytes) = self.read(SETTINGS)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| SecretsError::Corrupt)
    }

    /// Deletes every entry of the app (missing ones are fine).
    pub fn forget(&self) -> Result<()> {
        self.delete(IDENTITY)?;
        self.delete(VERIFIED)?;
        self.delete(SETTINGS)
    }
}

/// `contacts` after a member with `fingerprint` was verified (`true`) or had the mark taken
/// away (`false`).
pub fn apply_verification(
    mut contacts: Vec<VerifiedContact>,
    nickname: &str,
    fingerprint: [u8; 32],
    verified: bool,
) -> Vec<VerifiedContact> {
    contacts.retain(|c| c.fingerprint != fingerprint);
    if verified {
        contacts.push(VerifiedContact {
            nickname: nickname.to_owned(),
            fingerprint,
        });
    }
    contacts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_adds_and_removes_by_fingerprint() {
        let list = apply_verification(Vec::new(), "bob", [1; 32], true);
        let list = apply_verification(list, "carol", [2; 32], true);
        let list = apply_verification(list, "bobby", [1; 32], true);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].nickname, "bobby");
        let list = apply_verification(list, "carol", [2; 32], false);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].fingerprint, [1; 32]);
    }

    #[test]
    fn errors_have_codes_and_no_user_data() {
        assert_eq!(SecretsError::NoBackend.code(), "keyring_unavailable");
        assert!(SecretsError::NoBackend.to_string().contains("no keyring"));
    }
}
