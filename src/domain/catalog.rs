//! The town's power/responsibility list (权责清单): item kinds, how the town holds an item,
//! validation of an item record, and which version is in force on a day.

use chrono::NaiveDate;

use super::Violation;
use super::region::{RegionCode, RegionLevel as Level};

/// Item kinds: (stored spelling, Chinese name).
pub const KINDS: [(&str, &str); 7] = [
    ("ADMINISTRATIVE_LICENSING", "行政许可"),
    ("ADMINISTRATIVE_PENALTY", "行政处罚"),
    ("ADMINISTRATIVE_COERCION", "行政强制"),
    ("ADMINISTRATIVE_INSPECTION", "行政检查"),
    ("ADMINISTRATIVE_CONFIRMATION", "行政确认"),
    ("PUBLIC_SERVICE", "公共服务"),
    ("OTHER_POWER", "其他"),
];

/// How a town holds an item: (stored spelling, Chinese name).
pub const DELEGATIONS: [(&str, &str); 3] = [
    ("DEVOLVED", "下放"),
    ("ENTRUSTED", "委托"),
    ("AUTHORIZED", "授权"),
];

fn lookup(table: &[(&'static str, &'static str)], raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    table
        .iter()
        .find(|(code, zh)| raw == *code || raw == *zh)
        .map(|(code, _)| *code)
}

/// The stored kind for `raw` (enum name or Chinese).
pub fn kind(raw: &str) -> Option<&'static str> {
    lookup(&KINDS, raw)
}

/// The stored delegation for `raw` (enum name or Chinese).
pub fn delegation(raw: &str) -> Option<&'static str> {
    lookup(&DELEGATIONS, raw)
}

/// One item as imported (without version and recording fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInput {
    pub town_code: RegionCode,
    pub code: String,
    pub name: String,
    pub kind: &'static str,
    pub source_department: String,
    pub delegation: &'static str,
    pub legal_basis: String,
    pub time_limit_days: Option<i32>,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub withdrawn: bool,
}

/// Raw fields of one item, as strings (from CSV or from a proto record).
#[derive(Debug, Clone, Default)]
pub struct RawItem<'a> {
    pub town_code: &'a str,
    pub code: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub source_department: &'a str,
    pub delegation: &'a str,
    pub legal_basis: &'a str,
    pub time_limit_days: &'a str,
    pub effective_from: &'a str,
    pub effective_to: &'a str,
    pub withdrawn: bool,
}

/// A `YYYY-MM-DD` date.
pub fn date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()
}

/// Validates one item; violations are named `{prefix}.{field}`.
pub fn validate(raw: &RawItem<'_>, prefix: &str) -> Result<ItemInput, Vec<Violation>> {
    let mut v = Vec::new();
    let field = |f: &str| format!("{prefix}.{f}");
    let town = match RegionCode::parse(raw.town_code.trim()) {
        Ok(c) if c.level() == Level::Town => Some(c),
        _ => {
            v.push(Violation::new(field("town_code"), "a 9-digit town code"));
            None
        }
    };
    let code = raw.code.trim();
    if code.is_empty()
        || code.len() > 64
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        v.push(Violation::new(
            field("code"),
            "1–64 letters, digits, '_', '.' or '-'",
        ));
    }
    let name = raw.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        v.push(Violation::new(
            field("name"),
            "required, at most 200 characters",
        ));
    }
    let kind = kind(raw.kind);
    if kind.is_none() {
        v.push(Violation::new(
            field("kind"),
            "one of 行政许可, 行政处罚, 行政强制, 行政检查, 行政确认, 公共服务, 其他",
        ));
    }
    let delegation = delegation(raw.delegation);
    if delegation.is_none() {
        v.push(Violation::new(
            field("delegation"),
            "one of 下放, 委托, 授权",
        ));
    }
    for (f, s, max) in [
        ("source_department", raw.source_department, 200),
        ("legal_basis", raw.legal_basis, 4000),
    ] {
        if s.chars().count() > max {
            v.push(Violation::new(
                field(f),
                format!("at most {max} characters"),
            ));
        }
    }
    let limit = raw.time_limit_days.trim();
    let time_limit_days = if limit.is_empty() || limit == "0" {
        None
    } else {
        match limit.parse::<i32>() {
            Ok(n) if (1..=365).contains(&n) => Some(n),
            _ => {
                v.push(Violation::new(
                    field("time_limit"),
                    "working days, 1–365 (empty or 0: none)",
                ));
                None
            }
        }
    };
    let from = date(raw.effective_from);
    if from.is_none() {
        v.push(Violation::new(
            field("effective_from"),
            "required, YYYY-MM-DD",
        ));
    }
    let to = if raw.effective_to.trim().is_empty() {
        None
    } else {
        let d = date(raw.effective_to);
        match (d, from) {
            (None, _) => v.push(Violation::new(field("effective_to"), "YYYY-MM-DD or empty")),
            (Some(t), Some(f)) if t < f => v.push(Violation::new(
                field("effective_to"),
                "must not be before effective_from",
            )),
            _ => {}
        }
        d
    };
    match (town, kind, delegation, from, v.is_empty()) {
        (Some(town), Some(kind), Some(delegation), Some(effective_from), true) => Ok(ItemInput {
            town_code: town,
            code: code.to_owned(),
            name: name.to_owned(),
            kind,
            source_department: raw.source_department.trim().to_owned(),
            delegation,
            legal_basis: raw.legal_basis.trim().to_owned(),
            time_limit_days,
            effective_from,
            effective_to: to,
            withdrawn: raw.withdrawn,
        }),
        _ => Err(v),
    }
}

/// The dates and state of one stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub version: i32,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub withdrawn: bool,
}

/// The version in force on `day` among an item's versions: the highest version that took
/// effect on or before `day`, unless it is a withdrawal or ended before `day`.
pub fn in_force(versions: &[Validity], day: NaiveDate) -> Option<i32> {
    let v = versions
        .iter()
        .filter(|v| v.effective_from <= day)
        .max_by_key(|v| v.version)?;
    (!v.withdrawn && v.effective_to.is_none_or(|to| day <= to)).then_some(v.version)
}

/// Parses a 权责清单 CSV with the header
/// `town_code,code,name,kind,source_department,delegation,legal_basis,time_limit_days,effective_from,effective_to,withdrawn`
/// (kind and delegation in Chinese or as enum names; `withdrawn` = `true`/`1`/`收回` or empty).
/// Every bad field of every row is reported, named `line N.field`.
pub fn parse_catalog(text: &str) -> Result<Vec<ItemInput>, Vec<Violation>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let (mut items, mut errors) = (Vec::new(), Vec::new());
    for (i, row) in r.records().enumerate() {
        let line = format!("line {}", i + 2);
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                errors.push(Violation::new(line, format!("not CSV: {e}")));
                continue;
            }
        };
        let f = |k: usize| row.get(k).unwrap_or_default();
        let withdrawn = match f(10).trim() {
            "" | "false" | "0" => false,
            "true" | "1" | "收回" => true,
            _ => {
                errors.push(Violation::new(
                    format!("{line}.withdrawn"),
                    "true, false or empty",
                ));
                false
            }
        };
        let raw = RawItem {
            town_code: f(0),
            code: f(1),
            name: f(2),
            kind: f(3),
            source_department: f(4),
            delegation: f(5),
            legal_basis: f(6),
            time_limit_days: f(7),
            effective_from: f(8),
            effective_to: f(9),
            withdrawn,
        };
        match validate(&raw, &line) {
            Ok(item) => items.push(item),
            Err(v) => errors.extend(v),
        }
    }
    if items.is_empty() && errors.is_empty() {
        errors.push(Violation::new("csv", "no items"));
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        date(s).unwrap()
    }

    fn raw() -> RawItem<'static> {
        RawItem {
            town_code: "500110111",
            code: "QJ-GG-001",
            name: "农村危房改造申请受理",
            kind: "公共服务",
            source_department: "区住房城乡建委",
            delegation: "委托",
            legal_basis: "《重庆市农村危房改造实施办法》",
            time_limit_days: "5",
            effective_from: "2025-01-01",
            effective_to: "",
            withdrawn: false,
        }
    }

    #[test]
    fn accepts_chinese_and_enum_spellings() {
        let item = validate(&raw(), "items[0]").unwrap();
        assert_eq!(item.kind, "PUBLIC_SERVICE");
        assert_eq!(item.delegation, "ENTRUSTED");
        assert_eq!(item.time_limit_days, Some(5));
        let mut r = raw();
        r.kind = "ADMINISTRATIVE_PENALTY";
        r.delegation = "下放";
        let item = validate(&r, "x").unwrap();
        assert_eq!(
            (item.kind, item.delegation),
            ("ADMINISTRATIVE_PENALTY", "DEVOLVED")
        );
    }

    #[test]
    fn names_every_bad_field() {
        let r = RawItem {
            town_code: "500110111201",
            code: "a b",
            name: "",
            kind: "许可",
            delegation: "",
            time_limit_days: "400",
            effective_from: "2025-13-01",
            effective_to: "x",
            ..RawItem::default()
        };
        let fields: Vec<String> = validate(&r, "items[3]")
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        for f in [
            "town_code",
            "code",
            "name",
            "kind",
            "delegation",
            "time_limit",
            "effective_from",
            "effective_to",
        ] {
            assert!(fields.contains(&format!("items[3].{f}")), "{f}: {fields:?}");
        }
    }

    #[test]
    fn version_in_force_by_day() {
        let v = |version, from: &str, to: Option<&str>, withdrawn| Validity {
            version,
            effective_from: d(from),
            effective_to: to.map(d),
            withdrawn,
        };
        let history = [
            v(1, "2024-01-01", None, false),
            v(2, "2025-03-01", Some("2025-12-31"), false),
            v(3, "2026-01-01", None, true),
        ];
        assert_eq!(in_force(&history, d("2023-12-31")), None);
        assert_eq!(in_force(&history, d("2024-06-01")), Some(1));
        assert_eq!(in_force(&history, d("2025-02-28")), Some(1));
        assert_eq!(in_force(&history, d("2025-03-01")), Some(2));
        assert_eq!(in_force(&history, d("2025-12-31")), Some(2));
        // Withdrawn (收回) from 2026: nothing in force, though every version stays in history.
        assert_eq!(in_force(&history, d("2026-05-01")), None);
        // An item that simply ended.
        let ended = [v(1, "2024-01-01", Some("2024-06-30"), false)];
        assert_eq!(in_force(&ended, d("2024-07-01")), None);
    }
}
