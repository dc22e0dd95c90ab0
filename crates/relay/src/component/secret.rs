//! The component's shared secret, read from a file the operator keeps private.
//!
//! The secret is never printed: [`Secret`]'s `Debug` shows its length only, it is zeroized
//! on drop, and every [`SecretError`] names the file and the problem, never the content.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Longest secret file read (a secret is a line; anything larger is not one).
pub const MAX_SECRET_BYTES: usize = 1024;

/// The shared secret of an XEP-0114 component.
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// A secret from bytes (tests, or a caller that read it elsewhere); `None` when empty.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        let bytes = Zeroizing::new(bytes);
        (!bytes.is_empty()).then(|| Self(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Why the secret file cannot be used. The messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No such file.
    #[error("the secret file {0} does not exist")]
    Missing(PathBuf),
    /// It exists but could not be read.
    #[error("the secret file {path} cannot be read: {kind}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The IO error's kind (no OS message that could quote anything).
        kind: std::io::ErrorKind,
    },
    /// Not a regular file.
    #[error("the secret file {0} is not a regular file")]
    NotAFile(PathBuf),
    /// Empty, or only whitespace.
    #[error("the secret file {0} is empty")]
    Empty(PathBuf),
    /// Larger than [`MAX_SECRET_BYTES`].
    #[error("the secret file {0} is larger than {MAX_SECRET_BYTES} bytes: not a secret")]
    TooLarge(PathBuf),
    /// Others may read it (unix permissions).
    #[error(
        "the secret file {path} is readable by every user (mode {mode:o}): \
         chmod o-rwx it, and choose a new secret"
    )]
    WorldReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Reads the secret: the file's content without surrounding whitespace (a trailing
/// newline is what editors write). Refuses a missing, unreadable, empty, oversized or
/// world-readable file.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let owned = || path.to_owned();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SecretError::Missing(owned()),
        kind => SecretError::Unreadable {
            path: owned(),
            kind,
        },
    })?;
    let meta = file.metadata().map_err(|e| SecretError::Unreadable {
        path: owned(),
        kind: e.kind(),
    })?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile(owned()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o004 != 0 {
            return Err(SecretError::WorldReadable {
                path: owned(),
                mode,
            });
        }
    }
    let limit = u64::try_from(MAX_SECRET_BYTES).unwrap_or(u64::MAX) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(64));
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| SecretError::Unreadable {
            path: owned(),
            kind: e.kind(),
        })?;
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge(owned()));
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    let trimmed = bytes.get(start..end).unwrap_or_default().to_vec();
    Secret::new(trimmed).ok_or_else(|| SecretError::Empty(owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cc-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir().join(name);
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
        path
    }

    #[test]
    fn a_private_file_gives_its_trimmed_content() {
        let path = write("good", b"  s3cret value\n", 0o600);
        let secret = read_secret_file(&path).unwrap();
        assert_eq!(secret.bytes(), b"s3cret value");
        assert_eq!(format!("{secret:?}"), "Secret(12 bytes)");
    }

    #[test]
    fn bad_files_are_refused_without_quoting_them() {
        let missing = dir().join("nope");
        let cases: Vec<(PathBuf, &str)> = vec![
            (missing, "does not exist"),
            (write("empty", b" \n", 0o600), "is empty"),
            (write("large", &[b'a'; 2000], 0o600), "larger than"),
            #[cfg(unix)]
            (
                write("open", b"topsecretvalue", 0o644),
                "readable by every user",
            ),
            (dir(), "not a regular file"),
        ];
        for (path, want) in cases {
            let err = read_secret_file(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("topsecret") && !err.contains("aaaa"), "{err}");
        }
    }
}
