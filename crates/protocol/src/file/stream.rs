//! Chunked, streaming file encryption: AES-256-GCM under STREAM nonces.
//!
//! Body format (version 1), all integers big-endian:
//!
//! ```text
//! header = version (1 byte, = 1) || log2(chunk size) (1 byte, = 16)
//! body   = header || chunk_0 || ... || chunk_{n-1}
//! chunk_i = AES-256-GCM(key, nonce_i, aad = header, padded[i*C .. min((i+1)*C, P)])
//! nonce_i = 0^7 || i as u32 || last flag (1 byte: 1 for chunk n-1, else 0)
//! padded  = plaintext || 0x00 * (P - len),  P = Padmé(len + 1) over a 64-byte minimum
//! ```
//!
//! This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár (the nonce
//! layout of `aead::stream::EncryptorBE32`) written out here: the key is fresh per file,
//! so the nonce prefix is constant, and a nonce never repeats because the counter is
//! refused past `u32::MAX` (the size cap keeps it far below). Every chunk authenticates
//! the header. The padded length `P` (so the body length) depends only on the plaintext
//! length, which the receiver knows from the offer: it therefore knows where the body
//! ends and which chunk is last, refuses a longer body, and reports a short one.
//!
//! Both directions are push-style and sans-IO: `update` takes any number of bytes and
//! appends output to a caller's buffer, holding at most one chunk in between.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Version byte of the body format.
pub const BODY_VERSION: u8 = 1;
/// log2 of [`CHUNK_BYTES`].
pub const CHUNK_LOG2: u8 = 16;
/// Plaintext bytes per chunk (the last chunk may be shorter).
pub const CHUNK_BYTES: usize = 1 << CHUNK_LOG2;
/// AES-GCM tag length.
pub const TAG_BYTES: usize = 16;
/// Header length.
pub const HEADER_BYTES: usize = 2;
/// The largest plaintext accepted: 4 GiB.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

const HEADER: [u8; HEADER_BYTES] = [BODY_VERSION, CHUNK_LOG2];
const CHUNK: u64 = CHUNK_BYTES as u64;
const TAG: u64 = TAG_BYTES as u64;

/// Why a file could not be encrypted or decrypted. No variant carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The announced size is above [`MAX_FILE_BYTES`].
    #[error("file is larger than the limit")]
    TooLarge,
    /// The encryptor was given more or fewer bytes than announced (API misuse).
    #[error("plaintext length differs from the announced size")]
    LengthMismatch,
    /// The body's header names a version or chunk size this build does not speak.
    #[error("unsupported file format")]
    UnsupportedFormat,
    /// The body is longer than the announced size implies.
    #[error("file body is longer than announced")]
    BodyTooLong,
    /// The body ended before its last chunk.
    #[error("file body is truncated")]
    Truncated,
    /// A chunk failed authentication: tampered, reordered or from another file.
    #[error("file chunk failed authentication")]
    ChunkAuthentication,
    /// The padding after the plaintext is not all zero.
    #[error("file padding is invalid")]
    BadPadding,
    /// The plaintext's SHA-256 differs from the announced one.
    #[error("file hash does not match")]
    HashMismatch,
    /// Input after the body was complete, or `update` after an error (API misuse).
    #[error("decryptor already finished or failed")]
    Finished,
}

/// A file's 256-bit AES key: fresh and random per file. Zeroized on drop.
pub struct FileKey([u8; 32]);

impl Zeroize for FileKey {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for FileKey {}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

impl FileKey {
    /// Draws a fresh key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// A key received in an offer.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for encoding into an offer.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }
}

/// The padded plaintext length for `len` bytes: Padmé over a 64-byte minimum.
pub fn padded_len(len: u64) -> u64 {
    let l = len.saturating_add(1).max(64);
    let e = u64::BITS - 1 - l.leading_zeros(); // floor(log2 L)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 E) + 1
    let low_bits = e.saturating_sub(s);
    let mask = (1u64 << low_bits) - 1;
    l.saturating_add(mask) & !mask
}

fn chunk_count(padded: u64) -> u64 {
    padded.div_ceil(CHUNK)
}

/// The body length (header, chunks and tags) of a `len`-byte file: what the server stores.
pub fn body_len(len: u64) -> u64 {
    let p = padded_len(len);
    HEADER_BYTES as u64 + p + chunk_count(p) * TAG
}

fn nonce(counter: u32, last: bool) -> [u8; 12] {
    let [c0, c1, c2, c3] = counter.to_be_bytes();
    [0, 0, 0, 0, 0, 0, 0, c0, c1, c2, c3, u8::from(last)]
}

fn check_size(len: u64) -> Result<(), FileError> {
    if len > MAX_FILE_BYTES {
        Err(FileError::TooLarge)
    } else {
        Ok(())
    }
}

/// Encrypts one file, pushed in pieces of any size.
pub struct FileEncryptor {
    cipher: Aes256Gcm,
    hasher: Sha256,
    /// Plaintext of the chunk being filled (at most one chunk).
    pending: Vec<u8>,
    counter: u32,
    chunks: u64,
    announced: u64,
    fed: u64,
    /// Padding bytes not yet sealed.
    pad_left: u64,
    header_sent: bool,
}

impl FileEncryptor {
    /// An encryptor for a file of `len` bytes under `key`.
    pub fn new(key: &FileKey, len: u64) -> Result<Self, FileError> {
        check_size(len)?;
        let padded = padded_len(len);
        Ok(Self {
            cipher: key.cipher(),
            hasher: Sha256::new(),
            pending: Vec::with_capacity(CHUNK_BYTES),
            counter: 0,
            chunks: chunk_count(padded),
            announced: len,
            fed: 0,
            pad_left: padded - len,
            header_sent: false,
        })
    }

    /// Encrypts `data` (the next plaintext bytes), appending finished chunks to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        let new_fed = self.fed.saturating_add(data.len() as u64);
        if new_fed > self.announced {
            return Err(FileError::LengthMismatch);
        }
        self.fed = new_fed;
        self.hasher.update(data);
        self.emit_header(out);
        while !data.is_empty() {
            // A whole chunk that is not the last one goes straight from `data` to `out`.
            if self.pending.is_empty()
                && data.len() > CHUNK_BYTES - 1
                && u64::from(self.counter) + 1 < self.chunks
            {
                let (now, rest) = data.split_at(CHUNK_BYTES);
                self.seal_slice(now, false, out)?;
                data = rest;
                continue;
            }
            let room = CHUNK_BYTES - self.pending.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
            // A full chunk is sealed only once more bytes follow, so the last chunk
            // (which may be full) is sealed by `finish` with the last flag.
            if self.pending.len() == CHUNK_BYTES && u64::from(self.counter) + 1 < self.chunks {
                self.seal(false, out)?;
            }
        }
        Ok(())
    }

    /// Pads and seals the rest; returns the plaintext's SHA-256. Fails if fewer bytes than
    /// announced were given. Appends all the padding chunks at once (up to 12% of the
    /// file); to keep memory at one chunk, call [`FileEncryptor::finish_chunk`] instead.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<[u8; 32], FileError> {
        loop {
            if let Some(hash) = self.finish_chunk(out)? {
                return Ok(hash);
            }
        }
    }

    /// After the whole plaintext: seals the next chunk (the rest of the plaintext and
    /// padding), appending it to `out`. Returns the plaintext's SHA-256 once the last chunk
    /// is out; call again on `None`. Fails if fewer bytes than announced were given.
    pub fn finish_chunk(&mut self, out: &mut Vec<u8>) -> Result<Option<[u8; 32]>, FileError> {
        if self.fed != self.announced {
            return Err(FileError::LengthMismatch);
        }
        if u64::from(self.counter) >= self.chunks {
            return Err(FileError::Finished);
        }
        self.emit_header(out);
        let room = (CHUNK_BYTES - self.pending.len()) as u64;
        let take = room.min(self.pad_left);
        self.pending
            .resize(self.pending.len() + usize::try_from(take).unwrap_or(0), 0);
        self.pad_left -= take;
        let last = u64::from(self.counter) + 1 == self.chunks;
        self.seal(last, out)?;
        if last {
            Ok(Some(std::mem::take(&mut self.hasher).finalize().into()))
        } else {
            Ok(None)
        }
    }

    fn emit_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            out.extend_from_slice(&HEADER);
            self.header_sent = true;
        }
    }

    fn seal(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), FileError> {
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.seal_slice(&pending, last, out);
        pending.zeroize();
        pending.clear();
        self.pending = pending;
        result
    }

    fn seal_slice(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), FileError> {
        let start = out.len();
        out.extend_from_slice(plain);
        let nonce = nonce(self.counter, last);
        let body = out.get_mut(start..).ok_or(FileError::Finished)?;
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &HEADER, body)
            .map_err(|_| FileError::TooLarge)?;
        out.extend_from_slice(&tag);
        self.counter = self.counter.checked_add(1).ok_or(FileError::TooLarge)?;
        Ok(())
    }
}

impl std::fmt::Debug for FileEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncryptor")
            .field("announced", &self.announced)
            .field("fed", &self.fed)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Drop for FileEncryptor {
    fn drop(&mut self) {
        self.pending.zeroize();
    }
}

/// Decrypts one file body, pushed in pieces of any size, against the size and hash of
/// its offer. Plaintext it outputs is not trusted until [`FileDecryptor::finish`]
/// succeeds: write it to a temporary place and offer to save only then.
pub struct FileDecryptor {
    cipher: Aes256Gcm,
    hasher: Sha256,
    expected_hash: [u8; 32],
    /// Ciphertext of the chunk being filled (at most one chunk and its tag).
    pending: Vec<u8>,
    header: Vec<u8>,
    counter: u32,
    chunks: u64,
    announced: u64,
    padded: u64,
    /// Plaintext (padded) bytes decrypted so far.
    opened: u64,
    failed: bool,
}

impl FileDecryptor {
    /// A decryptor for a body announced as `len` plaintext bytes with SHA-256 `hash`.
    pub fn new(key: &FileKey, len: u64, hash: [u8; 32]) -> Result<Self, FileError> {
        check_size(len)?;
        let padded = padded_len(len);
        Ok(Self {
            cipher: key.cipher(),
            hasher: Sha256::new(),
            expected_hash: hash,
            pending: Vec::with_capacity(CHUNK_BYTES + TAG_BYTES),
            header: Vec::with_capacity(HEADER_BYTES),
            counter: 0,
            chunks: chunk_count(padded),
            announced: len,
            padded,
            opened: 0,
            failed: false,
        })
    }

    /// Decrypts `data` (the next body bytes), appending verified chunks' plaintext to
    /// `out`. Any error is final.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        if self.failed {
            return Err(FileError::Finished);
        }
        let result = self.update_inner(data, out);
        if result.is_err() {
            self.failed = true;
            self.pending.zeroize();
        }
        result
    }

    fn update_inner(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        if self.header.len() < HEADER_BYTES {
            let (h, rest) = data.split_at((HEADER_BYTES - self.header.len()).min(data.len()));
            self.header.extend_from_slice(h);
            data = rest;
            if self.header.len() == HEADER_BYTES && self.header != HEADER {
                return Err(FileError::UnsupportedFormat);
            }
        }
        while !data.is_empty() {
            if u64::from(self.counter) >= self.chunks {
                return Err(FileError::BodyTooLong);
            }
            let want = self.current_chunk_len();
            // A whole chunk in `data` is opened from there, without the copy to `pending`.
            if self.pending.is_empty() && data.len() >= want {
                let (now, rest) = data.split_at(want);
                self.open_slice(now, out)?;
                data = rest;
                continue;
            }
            let (now, rest) = data.split_at((want - self.pending.len()).min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
            if self.pending.len() == want {
                self.open(out)?;
            }
        }
        Ok(())
    }

    /// Ciphertext length of the chunk at `counter`, with its tag.
    fn current_chunk_len(&self) -> usize {
        let start = u64::from(self.counter) * CHUNK;
        let plain = (self.padded - start.min(self.padded)).min(CHUNK);
        usize::try_from(plain + TAG).unwrap_or(CHUNK_BYTES + TAG_BYTES)
    }

    fn open(&mut self, out: &mut Vec<u8>) -> Result<(), FileError> {
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.open_slice(&pending, out);
        pending.zeroize();
        pending.clear();
        self.pending = pending;
        result
    }

    /// Opens one whole chunk (ciphertext and tag), appending the file part of its
    /// plaintext to `out`; on error `out` is left as it was.
    fn open_slice(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
        let last = u64::from(self.counter) + 1 == self.chunks;
        let (ciphertext, tag) = chunk.split_at(chunk.len().saturating_sub(TAG_BYTES));
        let nonce = nonce(self.counter, last);
        let start = out.len();
        out.extend_from_slice(ciphertext);
        let body = out.get_mut(start..).ok_or(FileError::Finished)?;
        if self
            .cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &HEADER,
                body,
                aes_gcm::Tag::from_slice(tag),
            )
            .is_err()
        {
            out.truncate(start);
            return Err(FileError::ChunkAuthentication);
        }
        // Bytes of this chunk below the announced size are file; the rest must be zero.
        let file_part = self
            .announced
            .saturating_sub(self.opened)
            .min(body.len() as u64);
        let file_part = usize::try_from(file_part).unwrap_or(0);
        let (file, pad) = body.split_at_mut(file_part.min(body.len()));
        let pad_ok = pad.iter().fold(0u8, |acc, b| acc | b) == 0;
        pad.zeroize();
        self.hasher.update(&*file);
        self.opened += body.len() as u64;
        out.truncate(start + file_part);
        self.counter = self.counter.checked_add(1).ok_or(FileError::BodyTooLong)?;
        if pad_ok {
            Ok(())
        } else {
            Err(FileError::BadPadding)
        }
    }

    /// Checks that the whole body arrived and that the plaintext's hash is the announced one.
    pub fn finish(self) -> Result<(), FileError> {
        if self.failed {
            return Err(FileError::Finished);
        }
        if self.header.len() < HEADER_BYTES || u64::from(self.counter) < self.chunks {
            return Err(FileError::Truncated);
        }
        let hash: [u8; 32] = self.hasher.clone().finalize().into();
        if bool::from(hash.ct_eq(&self.expected_hash)) {
            Ok(())
        } else {
            Err(FileError::HashMismatch)
        }
    }
}

impl std::fmt::Debug for FileDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDecryptor")
            .field("announced", &self.announced)
            .field("counter", &self.counter)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Drop for FileDecryptor {
    fn drop(&mut self) {
        self.pending.zeroize();
    }
}

/// Encrypts a whole in-memory file; returns the body and the plaintext's SHA-256.
pub fn encrypt_all(key: &FileKey, plaintext: &[u8]) -> Result<(Vec<u8>, [u8; 32]), FileError> {
    let mut enc = FileEncryptor::new(key, plaintext.len() as u64)?;
    let mut out =
        Vec::with_capacity(usize::try_from(body_len(plaintext.len() as u64)).unwrap_or(0));
    enc.update(plaintext, &mut out)?;
    let hash = enc.finish(&mut out)?;
    Ok((out, hash))
}

/// Decrypts a whole in-memory body against the announced size and hash.
pub fn decrypt_all(
    key: &FileKey,
    len: u64,
    hash: [u8; 32],
    body: &[u8],
) -> Result<Vec<u8>, FileError> {
    let mut dec = FileDecryptor::new(key, len, hash)?;
    let mut out = Vec::new();
    dec.update(body, &mut out)?;
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(18)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7).to_le_bytes()[0]).collect()
    }

    fn chunk_bounds(len: u64) -> Vec<(usize, usize)> {
        // (start, end) of each chunk in the body
        let p = padded_len(len);
        let mut v = Vec::new();
        let mut at = HEADER_BYTES as u64;
        let mut left = p;
        while left > 0 {
            let plain = left.min(CHUNK);
            v.push((
                usize::try_from(at).unwrap(),
                usize::try_from(at + plain + TAG).unwrap(),
            ));
            at += plain + TAG;
            left -= plain;
        }
        v
    }

    #[test]
    fn round_trips_at_chunk_edges() {
        let mut rng = rng();
        for len in [
            0,
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            3 * CHUNK_BYTES + 17,
        ] {
            let key = FileKey::generate(&mut rng);
            let plain = data(len);
            let (body, hash) = encrypt_all(&key, &plain).unwrap();
            assert_eq!(body.len() as u64, body_len(len as u64), "{len}");
            assert!(body.len() > len + HEADER_BYTES + TAG_BYTES);
            assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&plain)));
            assert_eq!(decrypt_all(&key, len as u64, hash, &body).unwrap(), plain);
            // Pushed in odd-sized pieces, both ways.
            let mut enc = FileEncryptor::new(&key, len as u64).unwrap();
            let mut body2 = Vec::new();
            for piece in plain.chunks(1000) {
                enc.update(piece, &mut body2).unwrap();
            }
            assert_eq!(enc.finish(&mut body2).unwrap(), hash);
            assert_eq!(body2, body);
            let mut dec = FileDecryptor::new(&key, len as u64, hash).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(777) {
                dec.update(piece, &mut out).unwrap();
            }
            dec.finish().unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn finishing_chunk_by_chunk_bounds_output() {
        let key = FileKey::from_bytes([1; 32]);
        let len = 160 * CHUNK_BYTES as u64 + 1; // padding spans several chunks
        assert!(padded_len(len) - len > 2 * CHUNK);
        let mut enc = FileEncryptor::new(&key, len).unwrap();
        let mut body = Vec::new();
        let mut whole = Vec::new();
        for piece in data(usize::try_from(len).unwrap()).chunks(CHUNK_BYTES) {
            body.clear();
            enc.update(piece, &mut body).unwrap();
            assert!(body.len() <= HEADER_BYTES + CHUNK_BYTES + TAG_BYTES);
            whole.extend_from_slice(&body);
        }
        let hash = loop {
            body.clear();
            let done = enc.finish_chunk(&mut body).unwrap();
            assert!(body.len() <= CHUNK_BYTES + TAG_BYTES);
            whole.extend_from_slice(&body);
            if let Some(hash) = done {
                break hash;
            }
        };
        assert_eq!(enc.finish_chunk(&mut body), Err(FileError::Finished));
        assert_eq!(whole.len() as u64, body_len(len));
        assert_eq!(
            decrypt_all(&key, len, hash, &whole).unwrap().len() as u64,
            len
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any piece sizes give the same body and plaintext; any flipped bit is refused.
        #[test]
        fn any_pieces_and_any_flip(
            len in 0usize..3 * CHUNK_BYTES,
            enc_piece in 1usize..100_000,
            dec_piece in 1usize..100_000,
            flip in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = FileKey::from_bytes([3; 32]);
            let plain = data(len);
            let (body, hash) = encrypt_all(&key, &plain).unwrap();
            let mut enc = FileEncryptor::new(&key, len as u64).unwrap();
            let mut body2 = Vec::new();
            for piece in plain.chunks(enc_piece) {
                enc.update(piece, &mut body2).unwrap();
            }
            enc.finish(&mut body2).unwrap();
            proptest::prop_assert_eq!(&body2, &body);
            let mut dec = FileDecryptor::new(&key, len as u64, hash).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(dec_piece) {
                dec.update(piece, &mut out).unwrap();
            }
            dec.finish().unwrap();
            proptest::prop_assert_eq!(&out, &plain);
            let mut bad = body.clone();
            let at = flip.index(bad.len());
            bad[at] ^= 1 << bit;
            proptest::prop_assert!(decrypt_all(&key, len as u64, hash, &bad).is_err());
        }
    }

    #[test]
    fn padding_hides_exact_size() {
        assert_eq!(body_len(0), body_len(10));
        assert_eq!(body_len(1_000_000), body_len(1_000_001));
        for len in [0u64, 1, 100, 70_000, 1 << 30] {
            assert!(padded_len(len) > len);
            assert!(padded_len(len) <= (len + 1).max(64) * 112 / 100 + 1);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let mut rng = rng();
        let key = FileKey::generate(&mut rng);
        let len = 2 * CHUNK_BYTES + 100; // three chunks
        let plain = data(len);
        let (body, hash) = encrypt_all(&key, &plain).unwrap();
        assert_eq!(chunk_bounds(len as u64).len(), 3);
        // Every 61st byte, and every byte around each chunk boundary.
        let edges = chunk_bounds(len as u64)
            .into_iter()
            .flat_map(|(s, e)| [s - 1, s, s + 1, e - 1, e, e + 1])
            .filter(|&c| c < body.len());
        for cut in (0..body.len()).step_by(61).chain(edges) {
            let mut dec = FileDecryptor::new(&key, len as u64, hash).unwrap();
            let mut out = Vec::new();
            dec.update(&body[..cut], &mut out).unwrap();
            assert_eq!(dec.finish(), Err(FileError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn every_chunk_boundary_cut_is_refused() {
        let mut rng = rng();
        let key = FileKey::generate(&mut rng);
        let len = 2 * CHUNK_BYTES + 100;
        let (body, hash) = encrypt_all(&key, &data(len)).unwrap();
        for (_, end) in chunk_bounds(len as u64).into_iter().take(2) {
            assert_eq!(
                decrypt_all(&key, len as u64, hash, &body[..end]),
                Err(FileError::Truncated)
            );
        }
    }

    #[test]
    fn reordered_chunks_are_refused() {
        let mut rng = rng();
        let key = FileKey::generate(&mut rng);
        let len = 3 * CHUNK_BYTES; // padded to 4 chunks, equal-length first three
        let (body, hash) = encrypt_all(&key, &data(len)).unwrap();
        let b = chunk_bounds(len as u64);
        let (a0, a1) = b[0];
        let (b0, b1) = b[1];
        let mut swapped = body[..a0].to_vec();
        swapped.extend_from_slice(&body[b0..b1]);
        swapped.extend_from_slice(&body[a0..a1]);
        swapped.extend_from_slice(&body[b1..]);
        assert_eq!(swapped.len(), body.len());
        assert_eq!(
            decrypt_all(&key, len as u64, hash, &swapped),
            Err(FileError::ChunkAuthentication)
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let mut rng = rng();
        let key = FileKey::generate(&mut rng);
        let len = CHUNK_BYTES + 5;
        let (body, hash) = encrypt_all(&key, &data(len)).unwrap();
        // header, first chunk body, first tag, last chunk body, last tag
        let b = chunk_bounds(len as u64);
        let spots = [0, 1, b[0].0, b[0].1 - 1, b[1].0 + 3, b[1].1 - 1];
        for at in spots {
            let mut bad = body.clone();
            bad[at] ^= 0x04;
            let err = decrypt_all(&key, len as u64, hash, &bad).unwrap_err();
            let want = if at < HEADER_BYTES {
                FileError::UnsupportedFormat
            } else {
                FileError::ChunkAuthentication
            };
            assert_eq!(err, want, "bit at {at}");
        }
        // A wrong announced hash.
        let mut wrong = hash;
        wrong[31] ^= 1;
        assert_eq!(
            decrypt_all(&key, len as u64, wrong, &body),
            Err(FileError::HashMismatch)
        );
    }

    #[test]
    fn a_chunk_of_another_file_is_refused() {
        let mut rng = rng();
        let key1 = FileKey::generate(&mut rng);
        let key2 = FileKey::generate(&mut rng);
        let len = 2 * CHUNK_BYTES + 1;
        let plain = data(len);
        let (body1, hash) = encrypt_all(&key1, &plain).unwrap();
        let (body2, _) = encrypt_all(&key2, &plain).unwrap();
        let (s, e) = chunk_bounds(len as u64)[1];
        let mut mixed = body1.clone();
        mixed[s..e].copy_from_slice(&body2[s..e]);
        assert_eq!(
            decrypt_all(&key1, len as u64, hash, &mixed),
            Err(FileError::ChunkAuthentication)
        );
    }

    #[test]
    fn a_longer_body_is_cut_off() {
        let mut rng = rng();
        let key = FileKey::generate(&mut rng);
        let (mut body, hash) = encrypt_all(&key, &data(1000)).unwrap();
        body.push(0);
        assert_eq!(
            decrypt_all(&key, 1000, hash, &body),
            Err(FileError::BodyTooLong)
        );
        // Announced smaller than it is: the body runs past the announced end.
        let (body, hash) = encrypt_all(&key, &data(CHUNK_BYTES * 2)).unwrap();
        assert!(decrypt_all(&key, 10, hash, &body).is_err());
        // Errors are final.
        let mut dec = FileDecryptor::new(&key, 10, hash).unwrap();
        let mut out = Vec::new();
        assert!(dec.update(&body, &mut out).is_err());
        assert_eq!(dec.update(&[], &mut out), Err(FileError::Finished));
    }

    #[test]
    fn sizes_and_lengths_are_checked() {
        let key = FileKey::from_bytes([7; 32]);
        assert_eq!(
            FileEncryptor::new(&key, MAX_FILE_BYTES + 1).unwrap_err(),
            FileError::TooLarge
        );
        assert_eq!(
            FileDecryptor::new(&key, u64::MAX, [0; 32]).unwrap_err(),
            FileError::TooLarge
        );
        let mut enc = FileEncryptor::new(&key, 3).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            enc.update(&[1, 2, 3, 4], &mut out),
            Err(FileError::LengthMismatch)
        );
        enc.update(&[1, 2], &mut out).unwrap();
        assert_eq!(enc.finish(&mut out), Err(FileError::LengthMismatch));
        assert_eq!(format!("{key:?}"), "FileKey(..)");
    }

    #[test]
    fn nonces_never_repeat_and_flag_the_last_chunk() {
        let mut seen = std::collections::HashSet::new();
        for c in [0u32, 1, 2, u32::MAX] {
            for last in [false, true] {
                assert!(seen.insert(nonce(c, last)));
            }
        }
        assert_eq!(nonce(1, true)[11], 1);
        assert_eq!(nonce(0x0102_0304, false)[7..11], [1, 2, 3, 4]);
    }
}
