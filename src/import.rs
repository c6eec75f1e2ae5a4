//! `gridhub import regions --from DIR`: loads the national list in the china-division CSV
//! layout (provinces.csv, cities.csv, areas.csv, streets.csv, villages.csv or
//! villages.csv.gz; columns `code,name,…`) through the same import path as the
//! `ImportRegions` RPC, in one transaction with one audit event, with a progress bar.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use diesel_async::AsyncConnection;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::config::Settings;
use crate::database::Database;
use crate::domain::catalog::{ItemInput, parse_catalog};
use crate::domain::region::RegionCode;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::categories;
use crate::store::regions::{self, RegionInput, UpsertCounts};
use crate::store::{self, DbUrl};

/// The files of a china-division directory, top level first.
pub const FILES: [&str; 5] = [
    "provinces.csv",
    "cities.csv",
    "areas.csv",
    "streets.csv",
    "villages.csv",
];

/// Parses CSV texts (`code,name,…` with a header) into regions; parents follow from codes.
pub fn parse_sources(sources: &[&str]) -> anyhow::Result<Vec<RegionInput>> {
    let mut out = Vec::new();
    for (n, text) in sources.iter().enumerate() {
        parse_csv(text.as_bytes(), &format!("source {n}"), &mut out)?;
    }
    Ok(out)
}

fn parse_csv(reader: impl Read, name: &str, out: &mut Vec<RegionInput>) -> anyhow::Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{name}: row {}", i + 2))?;
        let (Some(code), Some(nm)) = (rec.get(0), rec.get(1)) else {
            bail!("{name}: row {} needs code and name", i + 2);
        };
        let code = RegionCode::parse(code.trim())
            .map_err(|e| anyhow::anyhow!("{name}: row {}: code {code:?} {e}", i + 2))?;
        if nm.trim().is_empty() {
            bail!("{name}: row {}: empty name", i + 2);
        }
        out.push(RegionInput {
            level: code.level() as i16,
            parent_code: code.parent().map(|p| p.to_string()),
            code: code.to_string(),
            name: nm.trim().to_owned(),
            fallback_owner: String::new(),
        });
    }
    Ok(())
}

/// Reads every file of a china-division directory (villages may be gzipped).
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<RegionInput>> {
    let mut out = Vec::new();
    for f in FILES {
        let plain = dir.join(f);
        let gz = dir.join(format!("{f}.gz"));
        if plain.exists() {
            parse_csv(File::open(&plain)?, &plain.display().to_string(), &mut out)?;
        } else if gz.exists() {
            parse_csv(
                flate2::read::GzDecoder::new(File::open(&gz)?),
                &gz.display().to_string(),
                &mut out,
            )?;
        } else {
            bail!("{} has neither {f} nor {f}.gz", dir.display());
        }
    }
    Ok(out)
}

/// Imports `rows` into the database at `url` in one transaction, with a progress bar when
/// `show_progress`; returns the counts and the number of rejected rows.
pub async fn import_rows(
    url: &DbUrl,
    rows: Vec<RegionInput>,
    show_progress: bool,
) -> anyhow::Result<(UpsertCounts, usize)> {
    let total = rows.len() as u64;
    let bar = if show_progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} regions ({per_sec})",
    )?);
    let mut conn = store::connect_one(url).await?;
    let indexed: Vec<(u64, RegionInput)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();
    let b = bar.clone();
    let result = conn
        .transaction::<_, anyhow::Error, _>(async move |conn| {
            let (counts, rejected) = regions::import(conn, indexed, |n| b.inc(n)).await?;
            for r in rejected.iter().take(20) {
                tracing::warn!(code = %r.code, reason = %r.reason, "region rejected");
            }
            let actor = Actor { sub: "gridhub-cli".into(), roles: vec!["admin".into()], request_id: String::new() };
            let after = json!({"records": total, "created": counts.created, "updated": counts.updated, "unchanged": counts.unchanged, "rejected": rejected.len()});
            let id = uuid::Uuid::now_v7().to_string();
            audit::append(conn, &actor, vec![NewEvent::ok("region.import", "region_import", &id, "", None, Some(after))]).await?;
            Ok((counts, rejected.len()))
        })
        .await?;
    audit::seal(&mut conn).await?;
    bar.finish_and_clear();
    Ok(result)
}

/// Parses a taxonomy CSV with the header
/// `type,code,name,parent_code,merge_radius_m,merge_window_hours,source_system,source_code,sign_limit_hours,handle_limit_days`:
/// `category` rows define unified classes (大类 without parent, 小类 under one; radius and
/// window default to 50 m and 72 h; the time limits, when given, override the server's
/// defaults for cases of the class), `mapping` rows map a source system's code onto `code`.
pub fn parse_categories(
    text: &str,
) -> anyhow::Result<(
    Vec<categories::CategoryInput>,
    Vec<categories::MappingInput>,
)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let (mut cats, mut maps) = (Vec::new(), Vec::new());
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("line {line}"))?;
        let col = |k: usize| rec.get(k).unwrap_or("").trim().to_owned();
        match col(0).as_str() {
            "category" => {
                let code = col(1);
                if code.is_empty()
                    || code.len() > 32
                    || !code
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    bail!(
                        "line {line}: code {code:?} must be 1-32 letters, digits, '_', '.' or '-'"
                    );
                }
                if col(2).is_empty() {
                    bail!("line {line}: category {code} needs a name");
                }
                let radius: f64 = if col(4).is_empty() {
                    50.0
                } else {
                    col(4)
                        .parse()
                        .with_context(|| format!("line {line}: merge_radius_m"))?
                };
                let window: i32 = if col(5).is_empty() {
                    72
                } else {
                    col(5)
                        .parse()
                        .with_context(|| format!("line {line}: merge_window_hours"))?
                };
                if !(0.0..=5000.0).contains(&radius) || !(0..=8760).contains(&window) {
                    bail!(
                        "line {line}: merge_radius_m must be 0-5000 and merge_window_hours 0-8760"
                    );
                }
                let limit = |k: usize, name: &str, max: i32| -> anyhow::Result<Option<i32>> {
                    if col(k).is_empty() {
                        return Ok(None);
                    }
                    match col(k).parse::<i32>() {
                        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                        _ => bail!("line {line}: {name} must be 1-{max}"),
                    }
                };
                let parent = col(3);
                cats.push(categories::CategoryInput {
                    code,
                    name: col(2),
                    parent_code: (!parent.is_empty()).then_some(parent),
                    merge_radius_m: radius,
                    merge_window_hours: window,
                    sign_limit_hours: limit(8, "sign_limit_hours", 240)?,
                    handle_limit_days: limit(9, "handle_limit_days", 365)?,
                });
            }
            "mapping" => {
                if col(1).is_empty() || col(7).is_empty() {
                    bail!("line {line}: a mapping needs code and source_code");
                }
                maps.push(categories::MappingInput {
                    source_system: col(6),
                    source_code: col(7),
                    unified_code: col(1),
                });
            }
            other => bail!("line {line}: type must be category or mapping, not {other:?}"),
        }
    }
    Ok((cats, maps))
}

/// Imports a taxonomy (see [`parse_categories`]) in one transaction with one audit event.
pub async fn import_categories(
    url: &DbUrl,
    text: &str,
    actor: &str,
) -> anyhow::Result<(usize, usize)> {
    let (cats, maps) = parse_categories(text)?;
    let mut conn = store::connect_one(url).await?;
    let actor = Actor {
        sub: actor.to_owned(),
        roles: vec!["admin".into()],
        request_id: String::new(),
    };
    let out = conn
        .transaction::<_, anyhow::Error, _>(async move |conn| {
            let (c, m) = categories::import(conn, cats, maps).await?;
            let id = uuid::Uuid::now_v7().to_string();
            audit::append(
                conn,
                &actor,
                vec![NewEvent::ok(
                    "category.import",
                    "category_import",
                    &id,
                    "",
                    None,
                    Some(json!({"categories": c, "mappings": m})),
                )],
            )
            .await?;
            Ok((c, m))
        })
        .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(out)
}

/// `gridhub import categories FILE.csv`.
pub async fn run_categories(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let db = Database::start(settings).await?;
    db.migrate().await?;
    let result = import_categories(&db.url, &text, "gridhub-cli").await;
    db.close();
    let (c, m) = result?;
    println!("imported {c} categories and {m} mappings");
    Ok(())
}

/// Parses a working-day calendar CSV: a header `date,kind,name`, then one row per listed day,
/// `kind` = `holiday` (休, a weekday off) or `workday` (班, an adjusted working weekend day).
pub fn parse_calendar(text: &str) -> anyhow::Result<Vec<store::calendar::CalendarDay>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let mut days = Vec::new();
    for (i, row) in r.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("line {line}"))?;
        let field = |k: usize| row.get(k).unwrap_or_default().trim();
        let day = chrono::NaiveDate::parse_from_str(field(0), "%Y-%m-%d")
            .with_context(|| format!("line {line}: date must be YYYY-MM-DD, not {:?}", field(0)))?;
        let working = match field(1) {
            "holiday" | "休" => false,
            "workday" | "班" => true,
            other => bail!("line {line}: kind must be holiday or workday, not {other:?}"),
        };
        days.push(store::calendar::CalendarDay {
            day,
            working,
            name: field(2).to_owned(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = days.iter().find(|d| !seen.insert(d.day)) {
        bail!("{} is listed twice", d.day);
    }
    Ok(days)
}

/// Imports a calendar (see [`parse_calendar`]) in one transaction with one audit event.
pub async fn import_calendar(url: &DbUrl, text: &str, actor: &str) -> anyhow::Result<usize> {
    let days = parse_calendar(text)?;
    let mut conn = store::connect_one(url).await?;
    let actor = Actor {
        sub: actor.to_owned(),
        roles: vec!["admin".into()],
        request_id: String::new(),
    };
    let out = conn
        .transaction::<_, anyhow::Error, _>(async move |conn| {
            let n = store::calendar::upsert(conn, &days).await?;
            let first = days.iter().map(|d| d.day).min();
            let last = days.iter().map(|d| d.day).max();
            audit::append(
                conn,
                &actor,
                vec![NewEvent::ok(
                    "calendar.import",
                    "calendar",
                    &uuid::Uuid::now_v7().to_string(),
                    "",
                    None,
                    Some(json!({"days": n, "first": first, "last": last})),
                )],
            )
            .await?;
            Ok(n)
        })
        .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(out)
}

/// `gridhub import calendar FILE.csv`.
pub async fn run_calendar(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let db = Database::start(settings).await?;
    db.migrate().await?;
    let result = import_calendar(&db.url, &text, "gridhub-cli").await;
    db.close();
    println!("imported {} calendar days", result?);
    Ok(())
}

/// Imports catalog items in one transaction with one audit event per new version.
pub async fn import_catalog(
    url: &DbUrl,
    items: Vec<ItemInput>,
    actor: &str,
) -> anyhow::Result<store::catalog::Summary> {
    let mut conn = store::connect_one(url).await?;
    let actor = Actor {
        sub: actor.to_owned(),
        roles: vec!["admin".into()],
        request_id: String::new(),
    };
    let out = conn
        .transaction::<_, anyhow::Error, _>(async move |conn| {
            let (summary, new) =
                store::catalog::import(conn, items, &actor.sub, chrono::Utc::now()).await?;
            audit::append(conn, &actor, store::catalog::audit_events(&new)).await?;
            Ok(summary)
        })
        .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(out)
}

/// `gridhub import catalog FILE.csv`.
pub async fn run_catalog(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let items = parse_catalog(&text).map_err(|v| {
        anyhow::anyhow!(
            "{}",
            v.iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let db = Database::start(settings).await?;
    db.migrate().await?;
    let result = import_catalog(&db.url, items, "gridhub-cli").await;
    db.close();
    let s = result?;
    println!(
        "catalog: {} new items, {} new versions ({} withdrawals), {} unchanged",
        s.created, s.versioned, s.withdrawn, s.unchanged
    );
    Ok(())
}

/// `gridhub import regions --from DIR`.
pub async fn run(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let rows = read_dir(dir)?;
    let parsed = started.elapsed();
    let db = Database::start(settings).await?;
    db.migrate().await?;
    let result = import_rows(&db.url, rows, true).await;
    db.close();
    let (c, rejected) = result?;
    println!(
        "imported in {:.1?} (parsing {:.1?}): {} created, {} updated, {} unchanged, {} rejected",
        started.elapsed(),
        parsed,
        c.created,
        c.updated,
        c.unchanged,
        rejected
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_parses_with_parents_from_codes() {
        let rows = crate::demo::fixture_regions().unwrap();
        assert_eq!(rows.len(), 1 + 1 + 1 + 31 + 480);
        let majing = rows.iter().find(|r| r.code == "500110111201").unwrap();
        assert_eq!(majing.name, "马颈村村民委员会");
        assert_eq!(majing.parent_code.as_deref(), Some("500110111"));
        assert_eq!(majing.level, 5);
    }

    #[test]
    fn the_fixture_taxonomy_parses() {
        let (cats, maps) = parse_categories(include_str!("../fixtures/categories.csv")).unwrap();
        assert!(cats.iter().any(|c| c.code == "0202"
            && c.parent_code.as_deref() == Some("02")
            && c.merge_radius_m == 50.0));
        assert!(maps.iter().any(|m| m.source_system == "12345"
            && m.source_code == "HL-0307"
            && m.unified_code == "0202"));
        assert!(
            parse_categories("type,code\nbogus,1\n")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        assert!(parse_categories("type,code,name\ncategory,a b,x\n").is_err());
    }

    #[test]
    fn the_2026_calendar_parses() {
        let days = parse_calendar(include_str!("../fixtures/calendar-2026.csv")).unwrap();
        let get = |d: &str| {
            days.iter()
                .find(|x| x.day.to_string() == d)
                .map(|x| x.working)
        };
        assert_eq!(get("2026-10-01"), Some(false));
        assert_eq!(get("2026-10-10"), Some(true));
        assert_eq!(get("2026-10-12"), None);
        assert!(parse_calendar("date,kind,name\n2026-13-01,holiday,x\n").is_err());
        assert!(parse_calendar("date,kind,name\n2026-10-01,off,x\n").is_err());
        let twice = parse_calendar("date,kind\n2026-10-01,holiday\n2026-10-01,workday\n");
        assert!(twice.unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn bad_rows_name_the_line() {
        let e = parse_sources(&["code,name\n50,\"重庆市\"\n5x,\"坏\"\n"]).unwrap_err();
        assert!(e.to_string().contains("row 3"), "{e}");
    }
}
