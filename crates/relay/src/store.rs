//! The state directory's files: private keys, ACME account credentials and certificates.
//!
//! Everything written here is private to the server's user: a directory we create is
//! `0700` and every file `0600` on unix, created with that mode (never world-readable,
//! even for a moment). On Windows files and directories take the ACL they inherit from
//! their parent (for the default, the user's temporary directory: the user, SYSTEM and the
//! administrators); a `--state-dir` elsewhere needs an ACL of the operator's (`icacls`),
//! which the crate does not set (no unsafe Win32 calls). Files are written under a temporary name in the same directory and
//! then moved into place, so a reader never sees half a file: [`create_new`] keeps a
//! file someone else put there first (two servers starting at once share one key), and
//! [`replace`] swaps a file atomically (a renewed certificate).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A directory for private files: created `0700` (with its missing parents) if absent;
/// left as it is if present.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `bytes` to a fresh `0600` file beside `path` and returns its name.
fn write_temporary(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut nonce = [0u8; 8];
    {
        use rand_core::RngCore as _;
        rand_core::OsRng.fill_bytes(&mut nonce);
    }
    let temporary = dir.join(format!(".{name}.{}.tmp", hex::encode(nonce)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(temporary),
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            Err(e)
        }
    }
}

/// Creates `path` (`0600`) holding `bytes`, unless it exists: then nothing is written
/// and `false` is returned (the caller reads what is there).
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let temporary = write_temporary(path, bytes)?;
    // A hard link never replaces an existing file: the first writer wins.
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `path` (`0600`) with `bytes`, replacing it atomically if it exists.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = write_temporary(path, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Removes `path`; a file that is not there is not an error.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-store-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn first_writer_wins_and_replace_swaps() {
        let dir = scratch("first");
        private_dir(&dir).unwrap();
        let path = dir.join("key.pem");
        assert!(create_new(&path, b"one").unwrap());
        assert!(!create_new(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        replace(&path, b"three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        remove(&path).unwrap();
        remove(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_0600_and_new_directories_0700() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("modes");
        let nested = dir.join("a/b");
        private_dir(&nested).unwrap();
        for d in [&dir.join("a"), &nested] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        let path = nested.join("secret");
        create_new(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        replace(&path, b"y").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
