//! Personal data (PIPL): phones, ID-card numbers, names, addresses, persons. The newtypes never
//! print their value in `Debug`, so they cannot reach logs by accident. The masks are defined
//! here ([`Shown::masked`]) and applied in one place (`app::pii`); a value is stored only as a
//! [`Sealed`] of its type (sealed and opened by `crypto::PiiCipher`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::Datelike;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};

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

/// A kind of personal value the hub seals for storage: the text that is sealed, and the value
/// again from text opened from storage.
pub trait Personal: Sized {
    /// The text that is sealed.
    fn to_plain(&self) -> Cow<'_, str>;
    /// The value from opened text (it was valid when sealed); `None` when it does not parse.
    fn from_plain(plain: String) -> Option<Self>;
}

/// A personal value shown as one string: whole to `pii_reader`, else [`Shown::masked`].
pub trait Shown: Personal {
    /// What a viewer without `pii_reader` sees.
    fn masked(&self) -> String;
}

/// A `T` sealed for storage (`crypto::PiiCipher::seal`): `key id || nonce || ciphertext+tag`,
/// stored as `bytea`. Only `PiiCipher::unseal` turns it back into a `T`, and the type keeps a
/// sealed phone from being opened as a name. `AsExpression`/`FromSqlRow` are only its SQL
/// mapping; no I/O here.
#[derive(AsExpression, FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Binary)]
pub struct Sealed<T> {
    blob: Vec<u8>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Sealed<T> {
    /// The sealed bytes as stored (made by `PiiCipher::seal`, or read back from a column).
    pub fn from_blob(blob: Vec<u8>) -> Self {
        Self {
            blob,
            kind: PhantomData,
        }
    }

    /// The sealed bytes.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }
}

impl<T> Clone for Sealed<T> {
    fn clone(&self) -> Self {
        Self::from_blob(self.blob.clone())
    }
}

impl<T> PartialEq for Sealed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.blob == other.blob
    }
}

impl<T> Eq for Sealed<T> {}

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(***)")
    }
}

impl<T> ToSql<diesel::sql_types::Binary, Pg> for Sealed<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        <Vec<u8> as ToSql<diesel::sql_types::Binary, Pg>>::to_sql(&self.blob, out)
    }
}

impl<T> FromSql<diesel::sql_types::Binary, Pg> for Sealed<T> {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <Vec<u8> as FromSql<diesel::sql_types::Binary, Pg>>::from_sql(bytes).map(Self::from_blob)
    }
}

/// A sealed value with its keyed blind index (HMAC of the plaintext), for equality look-ups
/// (a repeat caller, a person's disputes) without opening anything.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Indexed<T> {
    pub sealed: Sealed<T>,
    /// Keyed HMAC of the plaintext.
    pub index: Vec<u8>,
}

/// A person's name (a mediation party's).
#[derive(Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Name(***)")
    }
}

/// A home or work address (a mediation party's).
#[derive(Clone, PartialEq, Eq)]
pub struct Address(pub String);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(***)")
    }
}

/// What a masked address shows: nothing of it.
pub const ADDRESS_MASK: &str = "***";

impl Personal for Phone {
    fn to_plain(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
    fn from_plain(plain: String) -> Option<Self> {
        Some(Phone(plain))
    }
}

impl Shown for Phone {
    fn masked(&self) -> String {
        Phone::masked(self)
    }
}

impl Personal for IdNumber {
    fn to_plain(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
    fn from_plain(plain: String) -> Option<Self> {
        Some(IdNumber(plain))
    }
}

impl Shown for IdNumber {
    fn masked(&self) -> String {
        IdNumber::masked(self)
    }
}

impl Personal for Name {
    fn to_plain(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
    fn from_plain(plain: String) -> Option<Self> {
        Some(Name(plain))
    }
}

impl Shown for Name {
    fn masked(&self) -> String {
        mask_name(&self.0)
    }
}

impl Personal for Address {
    fn to_plain(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
    fn from_plain(plain: String) -> Option<Self> {
        Some(Address(plain))
    }
}

impl Shown for Address {
    fn masked(&self) -> String {
        ADDRESS_MASK.to_owned()
    }
}

impl Personal for Person {
    fn to_plain(&self) -> Cow<'_, str> {
        // A struct of strings always serializes.
        Cow::Owned(serde_json::to_string(self).unwrap_or_default())
    }
    fn from_plain(plain: String) -> Option<Self> {
        serde_json::from_str(&plain).ok()
    }
}

/// A resident ID-card number (居民身份证号码, GB 11643): 17 digits and a check character
/// (a digit or `X`) computed with ISO 7064 MOD 11-2.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

impl IdNumber {
    /// Validates the length, the digits, the birth date and the check character; a lower-case
    /// `x` is accepted and stored upper-case. `field` names it in errors.
    pub fn parse(raw: &str, field: &str) -> Result<IdNumber, Violation> {
        let s = raw.trim().to_ascii_uppercase();
        let bad = |why: &str| Violation::new(field, format!("not a valid ID-card number: {why}"));
        let b = s.as_bytes();
        if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
            return Err(bad("18 characters, the first 17 digits"));
        }
        let birth = chrono::NaiveDate::parse_from_str(&s[6..14], "%Y%m%d")
            .map_err(|_| bad("the birth date (digits 7–14) is not a date"))?;
        if birth.year() < 1850 {
            return Err(bad("the birth date (digits 7–14) is not a date"));
        }
        if b[17] != id_check_char(&b[..17]) {
            return Err(bad("the check digit does not match"));
        }
        Ok(IdNumber(s))
    }

    /// Wraps a value decrypted from storage (already validated when written).
    pub fn from_trusted(s: String) -> IdNumber {
        IdNumber(s)
    }

    /// The full number.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form: `500110********1234`.
    pub fn masked(&self) -> String {
        mask_middle(&self.0, 6, 4)
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdNumber(***)")
    }
}

/// The GB 11643 check character of the first 17 digits.
pub fn id_check_char(digits: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize]
}

/// A person's name, masked as its first character and a star per other character (`王**`).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
    }
}

/// Someone who asks the hub for something: an applicant at the window or a 12345 caller.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Person {
    pub name: String,
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id_number: String,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Person(***)")
    }
}

impl Person {
    /// Validates a person's fields (`{prefix}.name` …): name 1–50 characters, a phone, an
    /// optional ID number.
    pub fn parse(
        name: &str,
        phone: &str,
        id_number: &str,
        prefix: &str,
    ) -> Result<Person, Vec<Violation>> {
        let mut v = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 50 {
            v.push(Violation::new(
                format!("{prefix}.name"),
                "required, at most 50 characters",
            ));
        }
        let phone = Phone::parse(phone, &format!("{prefix}.phone")).map_err(|e| v.push(e));
        let id = if id_number.trim().is_empty() {
            Ok(None)
        } else {
            IdNumber::parse(id_number, &format!("{prefix}.id_number")).map(Some)
        }
        .map_err(|e| v.push(e));
        match (phone, id, v.is_empty()) {
            (Ok(phone), Ok(id), true) => Ok(Person {
                name: name.to_owned(),
                phone: phone.expose().to_owned(),
                id_number: id.map(|i| i.expose().to_owned()).unwrap_or_default(),
            }),
            _ => Err(v),
        }
    }

    /// The same person masked for callers without `pii_reader`.
    pub fn masked(&self) -> Person {
        Person {
            name: mask_name(&self.name),
            phone: Phone::from_trusted(self.phone.clone()).masked(),
            id_number: if self.id_number.is_empty() {
                String::new()
            } else {
                IdNumber::from_trusted(self.id_number.clone()).masked()
            },
        }
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
    #[test]
    fn id_numbers_checked_by_gb_11643() {
        // 11010519491231002X is the standard's own example.
        assert!(IdNumber::parse("11010519491231002X", "id").is_ok());
        assert!(IdNumber::parse("11010519491231002x", "id").is_ok());
        let good = IdNumber::parse("500110199001011236", "id");
        assert!(good.is_ok(), "{good:?}");
        assert_eq!(good.unwrap().masked(), "500110********1236");
        for bad in [
            "500110199001011234",
            "50011019900101123",
            "5001101990010112369",
            "50011019901301123X",
            "5001101990010112A8",
            "",
        ] {
            let v = IdNumber::parse(bad, "parties[0].id_number").unwrap_err();
            assert_eq!(v.field, "parties[0].id_number");
            assert!(!v.description.contains(bad) || bad.is_empty(), "{v:?}");
        }
    }

    #[test]
    fn person_masks_all_personal_fields() {
        let p = Person::parse("王小芳", "13812345678", "500110199001011236", "applicant").unwrap();
        let m = p.masked();
        assert_eq!(m.name, "王**");
        assert_eq!(m.phone, "138****5678");
        assert_eq!(m.id_number, "500110********1236");
        assert!(!format!("{p:?}").contains("138"));
        let errs = Person::parse("", "12", "1", "applicant").unwrap_err();
        assert_eq!(errs.len(), 3);
    }
}
