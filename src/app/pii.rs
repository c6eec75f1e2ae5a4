//! The one boundary where personal data is shown: a sealed value (XChaCha20-Poly1305, see
//! `crypto::PiiCipher`) is opened here and shown whole to a viewer holding `pii_reader`,
//! masked to everyone else ([`Sight`]). Responses (through `grpc::convert`), audit snapshots
//! and alerts (always [`Sight::Masked`]) all go through these functions; the masks themselves
//! are `domain::pii`'s. A value that does not open with the configured keys is logged and
//! counted by `PiiCipher::open` (metric `pii.decrypt_failures`) and shown as [`UNREADABLE`]:
//! one bad row does not fail a whole list, and the operator hears of it.

use crate::crypto::PiiCipher;
use crate::domain::pii::{IdNumber, Person, Phone, mask_name};
use crate::domain::principal::{Principal, Role};

/// What a value that does not open shows.
pub const UNREADABLE: &str = "***";

/// How much of a person a viewer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    /// The value in clear: callers holding `pii_reader` (their reads are audited).
    Whole,
    /// The masked form: every other caller, audit snapshots and alerts.
    Masked,
}

impl Sight {
    /// The sight of `viewer`.
    pub fn of(viewer: &Principal) -> Sight {
        if viewer.has(Role::PiiReader) {
            Sight::Whole
        } else {
            Sight::Masked
        }
    }
}

/// Opens an optional sealed value of `column` (empty when absent) and shows it by `mask`.
fn shown(
    cipher: &PiiCipher,
    enc: Option<&[u8]>,
    column: &'static str,
    sight: Sight,
    mask: impl FnOnce(String) -> String,
) -> String {
    let Some(enc) = enc else {
        return String::new();
    };
    match cipher.open(enc, column) {
        Some(v) if sight == Sight::Whole || v.is_empty() => v,
        Some(v) => mask(v),
        None => UNREADABLE.to_owned(),
    }
}

/// A phone: `138****5678` masked.
pub fn phone(cipher: &PiiCipher, enc: Option<&[u8]>, column: &'static str, sight: Sight) -> String {
    shown(cipher, enc, column, sight, |v| {
        Phone::from_trusted(v).masked()
    })
}

/// A resident ID number: `500110********1234` masked.
pub fn id_number(
    cipher: &PiiCipher,
    enc: Option<&[u8]>,
    column: &'static str,
    sight: Sight,
) -> String {
    shown(cipher, enc, column, sight, |v| {
        IdNumber::from_trusted(v).masked()
    })
}

/// A name: `王**` masked.
pub fn name(cipher: &PiiCipher, enc: &[u8], column: &'static str, sight: Sight) -> String {
    shown(cipher, Some(enc), column, sight, |v| mask_name(&v))
}

/// An address: not shown at all masked.
pub fn address(
    cipher: &PiiCipher,
    enc: Option<&[u8]>,
    column: &'static str,
    sight: Sight,
) -> String {
    shown(cipher, enc, column, sight, |_| UNREADABLE.to_owned())
}

/// A person (an applicant, a 12345 caller) sealed as one value; `None` when it does not open.
pub fn person(
    cipher: &PiiCipher,
    enc: &[u8],
    column: &'static str,
    sight: Sight,
) -> Option<Person> {
    let p: Person = match serde_json::from_str(&cipher.open(enc, column)?) {
        Ok(p) => p,
        Err(_) => {
            tracing::error!(column, "a stored person does not parse");
            return None;
        }
    };
    Some(match sight {
        Sight::Whole => p,
        Sight::Masked => p.masked(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_unless_whole_and_unreadable_when_it_does_not_open() {
        let c = PiiCipher::new(&crate::crypto::SecretKey::generate());
        let enc = c.encrypt("13812345678");
        let col = "test.phone";
        assert_eq!(phone(&c, Some(&enc), col, Sight::Whole), "13812345678");
        assert_eq!(phone(&c, Some(&enc), col, Sight::Masked), "138****5678");
        assert_eq!(phone(&c, None, col, Sight::Whole), "");
        let other = PiiCipher::new(&crate::crypto::SecretKey::generate());
        assert_eq!(phone(&other, Some(&enc), col, Sight::Whole), UNREADABLE);
        let name_enc = c.encrypt("王小明");
        assert_eq!(name(&c, &name_enc, col, Sight::Masked), "王**");
        let addr = c.encrypt("马颈村 3 组");
        assert_eq!(address(&c, Some(&addr), col, Sight::Masked), UNREADABLE);
        assert_eq!(address(&c, Some(&addr), col, Sight::Whole), "马颈村 3 组");
    }
}
