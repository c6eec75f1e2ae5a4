//! `gridhub export cases`: the month's cases of a region as CSV for the county's report.
//! UTF-8 with a byte-order mark, so office spreadsheet software opens the Chinese text
//! correctly; times in China Standard Time. The export itself is an audit event.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use diesel_async::AsyncConnection;
use serde_json::json;
use uuid::Uuid;

use crate::config::Settings;
use crate::database::Database;
use crate::domain::region::RegionCode;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::{self, DbUrl};

/// Exports to `file` (or standard output) and records the export in the audit trail.
pub async fn export_cases(
    url: &DbUrl,
    region: &RegionCode,
    from: NaiveDate,
    to: NaiveDate,
    file: Option<&Path>,
) -> anyhow::Result<usize> {
    let mut conn = store::connect_one(url).await?;
    let mut buf = Vec::new();
    let scope = crate::domain::principal::Scope::Subtree(region.clone());
    let n = crate::app::export::write_cases(&mut conn, &scope, from, to, &mut buf).await?;
    match file {
        Some(f) => std::fs::write(f, &buf).with_context(|| format!("writing {}", f.display()))?,
        None => std::io::stdout().write_all(&buf)?,
    }
    let actor = Actor {
        sub: "gridhub-cli".into(),
        roles: vec!["admin".into()],
        request_id: String::new(),
    };
    let region = region.to_string();
    conn.transaction::<_, anyhow::Error, _>(async move |conn| {
        audit::append(
            conn,
            &actor,
            vec![NewEvent::ok(
                "case.export",
                "case_export",
                &Uuid::now_v7().to_string(),
                &region,
                None,
                Some(json!({"from": from, "to": to, "cases": n})),
            )],
        )
        .await?;
        Ok(())
    })
    .await?;
    // Sealed now: a command has no sealer running beside it.
    audit::seal(&mut conn).await?;
    Ok(n)
}

/// `gridhub export cases --region CODE --from DATE --to DATE [--out FILE]`.
pub async fn run(
    settings: &Settings,
    region: &str,
    from: NaiveDate,
    to: NaiveDate,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let region = RegionCode::parse(region).with_context(|| format!("--region {region}"))?;
    anyhow::ensure!(from <= to, "--from must not be after --to");
    let db = Database::start(settings).await?;
    db.migrate().await?;
    let result = export_cases(&db.url, &region, from, to, out).await;
    db.close();
    let n = result?;
    if let Some(f) = out {
        eprintln!("exported {n} cases to {}", f.display());
    }
    Ok(())
}
