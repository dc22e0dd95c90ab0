//! Encrypted file sharing (issue 18): the chunked file encryption ([`stream`]) and the file
//! offer that travels inside an end-to-end encrypted message ([`offer`]).
//!
//! A file gets a fresh random [`FileKey`]; its plaintext is padded (Padmé) and encrypted in
//! 64 KiB chunks with AES-256-GCM under STREAM nonces (a chunk counter and a last-chunk
//! flag), so truncation, reordering and chunks of another file are detected. The server
//! stores the opaque body; the URL, key, hash, size, type and name travel only in the
//! [`offer::FileOffer`], inside the end-to-end encrypted message.

pub mod offer;
pub mod stream;

pub use offer::FileOffer;
pub use stream::{FileDecryptor, FileEncryptor, FileError, FileKey};
