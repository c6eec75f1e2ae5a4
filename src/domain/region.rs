//! Region codes and levels. Codes are hierarchical by prefix with a fixed length per level
//! (2, 4, 6, 9, 12, 15, 18 digits), so a code alone tells its level and all its ancestors.

use std::fmt;

use diesel_derive_newtype::DieselNewType;

/// Level of a region, from province (1) down to micro-grid (7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionLevel {
    Province = 1,
    City = 2,
    County = 3,
    Town = 4,
    Village = 5,
    Grid = 6,
    MicroGrid = 7,
}

impl RegionLevel {
    /// All levels, top down.
    pub const ALL: [RegionLevel; 7] = [
        RegionLevel::Province,
        RegionLevel::City,
        RegionLevel::County,
        RegionLevel::Town,
        RegionLevel::Village,
        RegionLevel::Grid,
        RegionLevel::MicroGrid,
    ];

    /// Length of a code at this level.
    pub fn code_len(self) -> usize {
        match self {
            RegionLevel::Province => 2,
            RegionLevel::City => 4,
            RegionLevel::County => 6,
            RegionLevel::Town => 9,
            RegionLevel::Village => 12,
            RegionLevel::Grid => 15,
            RegionLevel::MicroGrid => 18,
        }
    }

    /// The level whose codes have `len` digits.
    pub fn from_code_len(len: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code_len() == len)
    }

    /// The level stored as `n` (1..=7).
    pub fn from_i16(n: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|l| *l as i16 == n)
    }

    /// The parent level; `None` for provinces.
    pub fn parent(self) -> Option<Self> {
        Self::from_i16(self as i16 - 1)
    }

    /// Grids and micro-grids carry polygons and are what `LocateGrid` finds.
    pub fn is_grid(self) -> bool {
        matches!(self, RegionLevel::Grid | RegionLevel::MicroGrid)
    }
}

/// Why a string is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must not be empty")]
    Empty,
    #[error("must contain only the digits 0-9")]
    NotDigits,
    #[error("must have 2, 4, 6, 9, 12, 15 or 18 digits, not {0}")]
    BadLength(usize),
}

/// A validated region code. Stored as `text` (`DieselNewType` is only the SQL mapping: a code
/// read back was validated when written); it reads as a `&str` where one is wanted.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    DieselNewType,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl TryFrom<String> for RegionCode {
    type Error = CodeError;

    fn try_from(s: String) -> Result<Self, CodeError> {
        RegionCode::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(c: RegionCode) -> String {
        c.0
    }
}

impl std::ops::Deref for RegionCode {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl RegionCode {
    /// Validates `s` as a region code.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if s.is_empty() {
            return Err(CodeError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::NotDigits);
        }
        if RegionLevel::from_code_len(s.len()).is_none() {
            return Err(CodeError::BadLength(s.len()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The town this code lies in (the code itself when it is a town or above it).
    pub fn town(&self) -> RegionCode {
        let len = RegionLevel::Town.code_len().min(self.0.len());
        Self(self.0[..len].to_owned())
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The level implied by the code's length.
    pub fn level(&self) -> RegionLevel {
        // parse() guarantees the length is one of the levels'.
        RegionLevel::from_code_len(self.0.len()).unwrap_or(RegionLevel::MicroGrid)
    }

    /// The parent's code, derived from the prefix; `None` for provinces.
    pub fn parent(&self) -> Option<RegionCode> {
        let parent = self.level().parent()?;
        Some(RegionCode(self.0[..parent.code_len()].to_owned()))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &RegionCode) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_codes_at_every_level() {
        for (code, level) in [
            ("50", RegionLevel::Province),
            ("5001", RegionLevel::City),
            ("500110", RegionLevel::County),
            ("500110111", RegionLevel::Town),
            ("500110111201", RegionLevel::Village),
            ("500110111201001", RegionLevel::Grid),
            ("500110111201001002", RegionLevel::MicroGrid),
        ] {
            let c = RegionCode::parse(code).unwrap();
            assert_eq!(c.level(), level, "{code}");
        }
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(RegionCode::parse(""), Err(CodeError::Empty));
        assert_eq!(RegionCode::parse("5001a0"), Err(CodeError::NotDigits));
        assert_eq!(RegionCode::parse("50011"), Err(CodeError::BadLength(5)));
        assert_eq!(RegionCode::parse("５００１"), Err(CodeError::NotDigits));
    }

    #[test]
    fn town_is_the_first_nine_digits_or_the_code_above_town_level() {
        let c = |s| RegionCode::parse(s).unwrap();
        assert_eq!(c("500110111205001").town(), c("500110111"));
        assert_eq!(c("500110111").town(), c("500110111"));
        assert_eq!(c("500110").town(), c("500110"));
    }

    #[test]
    fn parent_is_the_prefix_of_the_level_above() {
        let c = RegionCode::parse("500110111201001").unwrap();
        assert_eq!(c.parent().unwrap().as_str(), "500110111201");
        assert_eq!(
            RegionCode::parse("500110")
                .unwrap()
                .parent()
                .unwrap()
                .as_str(),
            "5001"
        );
        assert_eq!(RegionCode::parse("50").unwrap().parent(), None);
    }

    #[test]
    fn within_is_prefix_based() {
        let town = RegionCode::parse("500110111").unwrap();
        let majing = RegionCode::parse("500110111201").unwrap();
        let datong = RegionCode::parse("500110111200").unwrap();
        assert!(majing.is_within(&town));
        assert!(majing.is_within(&majing));
        assert!(!town.is_within(&majing));
        assert!(!datong.is_within(&majing));
    }
}
