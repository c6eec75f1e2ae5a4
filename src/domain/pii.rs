//! Personal data (PIPL): phone and ID-card numbers. The newtypes never print their value in
//! `Debug`, so they cannot reach logs by accident; masking happens here and is applied in one
//! place, the conversion to proto.

use std::fmt;

use super::Violation;

/// A phone number: a mainland mobile (11 digits starting with 1) or a landline with area
/// code (7–12 digits, optional hyphen after the area code).
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Validates and normalizes (spaces removed) a phone number; `field` names it in errors.
    pub fn parse(raw: &str, field: &str) -> Result<Phone, Violation> {
        let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        let digits: String = s.chars().filter(|c| *c != '-').collect();
        let ok_chars =
            s.chars().all(|c| c.is_ascii_digit() || c == '-') && s.matches('-').count() <= 1;
        let mobile = digits.len() == 11 && digits.starts_with('1') && !s.contains('-');
        let landline = (7..=12).contains(&digits.len()) && !digits.starts_with('1');
        if ok_chars && (mobile || landline) {
            Ok(Phone(s))
        } else {
            Err(Violation::new(
                field,
                "must be an 11-digit mobile number or a landline with area code",
            ))
        }
    }

    /// Wraps a value decrypted from storage (already validated when written).
    pub fn from_trusted(s: String) -> Phone {
        Phone(s)
    }

    /// The full number (only for encryption and for callers with `pii_reader`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form: the first 3 and last 4 characters kept, e.g. `138****5678`.
    pub fn masked(&self) -> String {
        mask_middle(&self.0, 3, 4)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(***)")
    }
}

/// A value encrypted for storage with its keyed blind index (see `crypto::PiiCipher`).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// `key id || nonce || ciphertext+tag`.
    pub enc: Vec<u8>,
    /// Keyed HMAC of the plaintext, for equality look-ups.
    pub index: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(***)")
    }
}

/// Keeps `head` leading and `tail` trailing characters and stars the rest; a value too short
/// to keep both is starred whole.
pub fn mask_middle(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out = String::with_capacity(chars.len());
    out.extend(&chars[..head]);
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_is_masked_as_api_md_says() {
        let p = Phone::parse("138 1234 5678", "phone").unwrap();
        assert_eq!(p.expose(), "13812345678");
        assert_eq!(p.masked(), "138****5678");
    }

    #[test]
    fn landline_accepted() {
        assert!(Phone::parse("023-48651234", "phone").is_ok());
        assert!(Phone::parse("02348651234", "phone").is_ok());
    }

    #[test]
    fn bad_phones_rejected_with_field() {
        for bad in [
            "",
            "12345",
            "1381234567x",
            "138123456789",
            "23-4-5678901",
            "+8613812345678",
        ] {
            let v = Phone::parse(bad, "worker.phone").unwrap_err();
            assert_eq!(v.field, "worker.phone", "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_number() {
        let p = Phone::parse("13812345678", "phone").unwrap();
        assert!(!format!("{p:?}").contains("1381"));
    }

    #[test]
    fn id_number_style_masking() {
        assert_eq!(
            mask_middle("500110199001011234", 6, 4),
            "500110********1234"
        );
        assert_eq!(mask_middle("123", 3, 4), "***");
    }
}
