//! The one boundary where personal data is shown: a sealed value (XChaCha20-Poly1305, see
//! `crypto::PiiCipher`) is opened here and shown whole to a viewer holding `pii_reader`,
//! masked to everyone else ([`Sight`]). Responses (through `grpc::convert`), audit snapshots
//! and alerts (always [`Sight::Masked`]) all go through these functions; the masks themselves
//! are `domain::pii`'s. A value that does not open with the configured keys is logged and
//! counted by `PiiCipher::unseal` (metric `pii.decrypt_failures`) and shown as [`UNREADABLE`]:
//! one bad row does not fail a whole list, and the operator hears of it.

use crate::crypto::PiiCipher;
use crate::domain::pii::{Person, Sealed, Shown};
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

/// Shows a sealed value of `column` (empty when absent) to a viewer of `sight`: whole, or by
/// its type's mask ([`Shown::masked`]); [`UNREADABLE`] when it does not open.
pub fn show<T: Shown>(
    cipher: &PiiCipher,
    sealed: Option<&Sealed<T>>,
    column: &'static str,
    sight: Sight,
) -> String {
    let Some(sealed) = sealed else {
        return String::new();
    };
    match cipher.unseal(sealed, column) {
        Some(v) if sight == Sight::Whole => v.to_plain().into_owned(),
        Some(v) if v.to_plain().is_empty() => String::new(),
        Some(v) => v.masked(),
        None => UNREADABLE.to_owned(),
    }
}

/// A person (an applicant, a 12345 caller) sealed as one value; `None` when it does not open.
pub fn person(
    cipher: &PiiCipher,
    sealed: &Sealed<Person>,
    column: &'static str,
    sight: Sight,
) -> Option<Person> {
    let p = cipher.unseal(sealed, column)?;
    Some(match sight {
        Sight::Whole => p,
        Sight::Masked => p.masked(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::pii::{Address, Name, Phone};

    #[test]
    fn masked_unless_whole_and_unreadable_when_it_does_not_open() {
        let c = PiiCipher::new(&crate::crypto::SecretKey::generate());
        let phone = c.seal(&Phone::parse("13812345678", "p").unwrap());
        let col = "test.phone";
        assert_eq!(show(&c, Some(&phone), col, Sight::Whole), "13812345678");
        assert_eq!(show(&c, Some(&phone), col, Sight::Masked), "138****5678");
        assert_eq!(show::<Phone>(&c, None, col, Sight::Whole), "");
        let other = PiiCipher::new(&crate::crypto::SecretKey::generate());
        assert_eq!(show(&other, Some(&phone), col, Sight::Whole), UNREADABLE);
        let name = c.seal(&Name("王小明".into()));
        assert_eq!(show(&c, Some(&name), col, Sight::Masked), "王**");
        let addr = c.seal(&Address("马颈村 3 组".into()));
        assert_eq!(show(&c, Some(&addr), col, Sight::Masked), UNREADABLE);
        assert_eq!(show(&c, Some(&addr), col, Sight::Whole), "马颈村 3 组");
    }

    #[test]
    fn a_person_opens_whole_or_masked_and_not_as_another_type() {
        let c = PiiCipher::new(&crate::crypto::SecretKey::generate());
        let p = Person::parse("王小明", "13812345678", "", "p").unwrap();
        let sealed = c.seal(&p);
        assert_eq!(person(&c, &sealed, "t", Sight::Whole), Some(p.clone()));
        assert_eq!(person(&c, &sealed, "t", Sight::Masked), Some(p.masked()));
        // A sealed name is not a person: it opens but does not parse, and is refused.
        let name = Sealed::<Person>::from_blob(c.seal(&Name("王小明".into())).blob().to_vec());
        assert_eq!(person(&c, &name, "t", Sight::Whole), None);
    }
}
