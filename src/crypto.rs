//! Keys and the small amount of cryptography gridhub does itself: per-value authenticated
//! encryption of personal data (XChaCha20-Poly1305 with a key id, keys rotating), a keyed HMAC blind index
//! for exact look-ups of encrypted values, and MACs that make page tokens opaque and bound
//! to the caller and filter.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::pii::{Indexed, Personal, Sealed};

type HmacSha256 = Hmac<Sha256>;

/// Failure to decrypt or decode.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed or was encrypted with an unknown key")]
    BadCiphertext,
    #[error("key material must be 32 bytes, base64 encoded")]
    BadKey,
}

/// 32 bytes of secret key material, never printed.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Fresh random key material.
    pub fn generate() -> SecretKey {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        SecretKey(k)
    }

    /// Decodes base64 (standard or URL-safe) key material of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<SecretKey, CryptoError> {
        let s = s.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s))
            .map_err(|_| CryptoError::BadKey)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(SecretKey(arr))
    }

    /// Base64 text, for writing the key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The raw bytes (for HS256 signing).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A sub-key for one purpose, so one master key serves several uses independently.
    pub fn derive(&self, purpose: &str) -> SecretKey {
        SecretKey(hmac(&self.0, purpose.as_bytes()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Encrypts personal data per value and computes blind indexes, with a ring of keys so keys
/// can rotate.
///
/// A stored value is `tag || nonce || ciphertext+tag`. New values use XChaCha20-Poly1305 with a
/// 24-byte random nonce and `tag = 0x80 | key id`; a tag without the high bit is the earlier
/// format (ChaCha20-Poly1305, 12-byte nonce) and still decrypts. Each key id's encryption key
/// is derived from that id's master key; the blind-index key from the current master, so after
/// a rotation `gridhub keys rotate` re-encrypts every value under the current key and
/// recomputes every index.
#[derive(Clone)]
pub struct PiiCipher {
    current: u8,
    keys: std::collections::BTreeMap<u8, SecretKey>,
    index_key: SecretKey,
}

const NONCE_LEN: usize = 12;
const XNONCE_LEN: usize = 24;
const XCHACHA: u8 = 0x80;

impl PiiCipher {
    /// A cipher with one master key, id 1.
    pub fn new(master: &SecretKey) -> PiiCipher {
        PiiCipher::with_keys(1, master, &[])
    }

    /// A cipher encrypting under `current` (key id `current_id`, 1–127) and decrypting values
    /// of any key in `previous` too.
    pub fn with_keys(
        current_id: u8,
        current: &SecretKey,
        previous: &[(u8, SecretKey)],
    ) -> PiiCipher {
        let enc = |m: &SecretKey| m.derive("gridhub/pii/encryption/v1");
        let mut keys: std::collections::BTreeMap<u8, SecretKey> = previous
            .iter()
            .map(|(id, m)| (*id & 0x7f, enc(m)))
            .collect();
        let current_id = current_id & 0x7f;
        keys.insert(current_id, enc(current));
        PiiCipher {
            current: current_id,
            keys,
            index_key: current.derive("gridhub/pii/blind-index/v1"),
        }
    }

    /// The id of the key new values are encrypted with.
    pub fn current_key_id(&self) -> u8 {
        self.current
    }

    /// Whether `blob` is already in the current format and under the current key.
    pub fn is_current(&self, blob: &[u8]) -> bool {
        blob.first() == Some(&(XCHACHA | self.current))
    }

    /// `tag || nonce || ciphertext+tag` (see the type's docs). Personal values are sealed as
    /// their type ([`PiiCipher::seal`]); this is its text form.
    fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        self.encrypt_bytes(plaintext.as_bytes())
    }

    /// [`PiiCipher::encrypt`] of any bytes (e.g. a stored answer holding personal data).
    pub fn encrypt_bytes(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; XNONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let key = self
            .keys
            .get(&self.current)
            .map(|k| k.bytes())
            .unwrap_or(&[0u8; 32]);
        // Encryption with a valid key and nonce length cannot fail.
        let ct = chacha20poly1305::XChaCha20Poly1305::new(Key::from_slice(key))
            .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + XNONCE_LEN + ct.len());
        out.push(XCHACHA | self.current);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Reverses [`PiiCipher::encrypt`] for any key of the ring; fails on tampering or an
    /// unknown key id.
    fn decrypt(&self, blob: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.decrypt_bytes(blob)?).map_err(|_| CryptoError::BadCiphertext)
    }

    /// Reverses [`PiiCipher::encrypt_bytes`].
    pub fn decrypt_bytes(&self, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&tag, rest) = blob.split_first().ok_or(CryptoError::BadCiphertext)?;
        let key = self
            .keys
            .get(&(tag & 0x7f))
            .ok_or(CryptoError::BadCiphertext)?;
        if tag & XCHACHA != 0 {
            if rest.len() < XNONCE_LEN {
                return Err(CryptoError::BadCiphertext);
            }
            let (nonce, ct) = rest.split_at(XNONCE_LEN);
            chacha20poly1305::XChaCha20Poly1305::new(Key::from_slice(key.bytes()))
                .decrypt(chacha20poly1305::XNonce::from_slice(nonce), ct)
        } else {
            if rest.len() < NONCE_LEN {
                return Err(CryptoError::BadCiphertext);
            }
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            ChaCha20Poly1305::new(Key::from_slice(key.bytes()))
                .decrypt(Nonce::from_slice(nonce), ct)
        }
        .map_err(|_| CryptoError::BadCiphertext)
    }

    /// [`PiiCipher::decrypt`] for showing a value: one that does not open is logged and
    /// counted as `column`'s (see [`decrypt_failed`]) and is `None`.
    fn open(&self, blob: &[u8], column: &'static str) -> Option<String> {
        self.decrypt(blob).map_err(|_| decrypt_failed(column)).ok()
    }

    /// Seals a personal value for storage.
    pub fn seal<T: Personal>(&self, value: &T) -> Sealed<T> {
        Sealed::from_blob(self.encrypt(&value.to_plain()))
    }

    /// Seals a personal value with its blind index.
    pub fn seal_indexed<T: Personal>(&self, value: &T) -> Indexed<T> {
        let plain = value.to_plain();
        Indexed {
            sealed: Sealed::from_blob(self.encrypt(&plain)),
            index: self.blind_index(&plain),
        }
    }

    /// Opens a sealed value of `column`; one that does not open or parse is logged and counted
    /// ([`decrypt_failed`]) and is `None`.
    pub fn unseal<T: Personal>(&self, sealed: &Sealed<T>, column: &'static str) -> Option<T> {
        let value = T::from_plain(self.open(sealed.blob(), column)?);
        if value.is_none() {
            decrypt_failed(column);
        }
        value
    }

    /// Keyed HMAC of the value, for equality look-ups without decrypting.
    pub fn blind_index(&self, value: &str) -> Vec<u8> {
        hmac(self.index_key.bytes(), value.as_bytes()).to_vec()
    }
}

impl fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PiiCipher(***)")
    }
}

/// A stored personal value that does not open with the configured keys (a key missing from
/// `--pii-previous-keys`, or tampering): logged (which column, never a value) and counted
/// (`pii.decrypt_failures`), so it is seen, whatever the answer shows in its place.
pub fn decrypt_failed(what: &'static str) {
    static COUNTER: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    COUNTER
        .get_or_init(|| {
            opentelemetry::global::meter("gridhub")
                .u64_counter("pii.decrypt_failures")
                .with_description("stored personal values that did not decrypt, by column")
                .build()
        })
        .add(1, &[opentelemetry::KeyValue::new("column", what)]);
    tracing::error!(
        column = what,
        "a stored personal value does not decrypt with the configured keys"
    );
}

/// Signs page tokens so they are opaque, unforgeable and valid only for the caller and
/// filter they were issued for.
#[derive(Clone, Debug)]
pub struct PageTokens {
    key: SecretKey,
}

impl PageTokens {
    /// Page tokens keyed from the master key.
    pub fn new(master: &SecretKey) -> PageTokens {
        PageTokens {
            key: master.derive("gridhub/page-token/v1"),
        }
    }

    fn mac(&self, binding: &str, payload: &[u8]) -> [u8; 16] {
        let mut msg = Vec::with_capacity(binding.len() + 1 + payload.len());
        msg.extend_from_slice(binding.as_bytes());
        msg.push(0);
        msg.extend_from_slice(payload);
        let full = hmac(self.key.bytes(), &msg);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A token that resumes after `cursor`.
    pub fn encode(&self, binding: &str, cursor: &str) -> String {
        let mac = self.mac(binding, cursor.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(cursor),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The cursor inside `token`, if it was issued for `binding`.
    pub fn decode(&self, binding: &str, token: &str) -> Option<String> {
        let (c, m) = token.split_once('.')?;
        let cursor = URL_SAFE_NO_PAD.decode(c).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(m).ok()?;
        let expected = self.mac(binding, &cursor);
        // Constant-time comparison of the tags.
        let same = mac.len() == expected.len()
            && mac
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        String::from_utf8(cursor).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_round_trip_and_tamper_detection() {
        let c = PiiCipher::new(&SecretKey::generate());
        let blob = c.encrypt("13812345678");
        assert!(!blob.windows(4).any(|w| w == b"1381"));
        assert_eq!(c.decrypt(&blob).unwrap(), "13812345678");
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(c.decrypt(&bad).is_err());
        let other = PiiCipher::new(&SecretKey::generate());
        assert!(other.decrypt(&blob).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_legacy_values_decrypt() {
        let (k1, k2) = (SecretKey::generate(), SecretKey::generate());
        let old = PiiCipher::new(&k1);
        let blob = old.encrypt("500110195003071234");
        // A value of the earlier format (ChaCha20-Poly1305, 12-byte nonce, tag = key id).
        let enc = k1.derive("gridhub/pii/encryption/v1");
        let nonce = [7u8; NONCE_LEN];
        let mut legacy = vec![1u8];
        legacy.extend_from_slice(&nonce);
        legacy.extend(
            ChaCha20Poly1305::new(Key::from_slice(enc.bytes()))
                .encrypt(Nonce::from_slice(&nonce), b"13812345678".as_ref())
                .unwrap(),
        );
        assert_eq!(old.decrypt(&legacy).unwrap(), "13812345678");
        let new = PiiCipher::with_keys(2, &k2, &[(1, k1.clone())]);
        assert_eq!(new.decrypt(&blob).unwrap(), "500110195003071234");
        assert_eq!(new.decrypt(&legacy).unwrap(), "13812345678");
        assert!(!new.is_current(&blob) && !new.is_current(&legacy));
        let re = new.encrypt("500110195003071234");
        assert!(new.is_current(&re));
        assert_eq!(re[0], 0x80 | 2);
        // Without key 1 the old value no longer opens.
        assert!(PiiCipher::with_keys(2, &k2, &[]).decrypt(&blob).is_err());
    }

    #[test]
    fn blind_index_is_deterministic_and_keyed() {
        let k = SecretKey::generate();
        let c = PiiCipher::new(&k);
        assert_eq!(c.blind_index("13812345678"), c.blind_index("13812345678"));
        assert_ne!(c.blind_index("13812345678"), c.blind_index("13812345679"));
        assert_ne!(
            c.blind_index("13812345678"),
            PiiCipher::new(&SecretKey::generate()).blind_index("13812345678")
        );
    }

    #[test]
    fn page_tokens_are_bound() {
        let t = PageTokens::new(&SecretKey::generate());
        let tok = t.encode("alice|regions|500110", "500110111201");
        assert_eq!(
            t.decode("alice|regions|500110", &tok).as_deref(),
            Some("500110111201")
        );
        assert_eq!(t.decode("bob|regions|500110", &tok), None);
        assert_eq!(t.decode("alice|regions|500110", "garbage"), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("99"),
            tok.split_once('.').unwrap().1
        );
        assert_eq!(t.decode("alice|regions|500110", &forged), None);
    }

    #[test]
    fn keys_round_trip_base64_and_hide_in_debug() {
        let k = SecretKey::generate();
        let back = SecretKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(k.bytes(), back.bytes());
        assert_eq!(format!("{k:?}"), "SecretKey(***)");
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
    }
}
