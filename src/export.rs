//! `gridhub export cases`: the month's cases of a region as CSV for the county's report.
//! UTF-8 with a byte-order mark, so office spreadsheet software opens the Chinese text
//! correctly; times in China Standard Time. The export itself is an audit event.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use crate::config::Settings;
use crate::database::Database;
use crate::domain::region::RegionCode;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::cases::Case;
use crate::store::schema::{cases, categories};
use crate::store::{self, DbUrl};

/// The column headers.
pub const HEADER: [&str; 19] = [
    "案件编号",
    "状态",
    "类别代码",
    "类别名称",
    "网格",
    "所属区域",
    "处置单位",
    "首次上报",
    "立案时间",
    "派遣时间",
    "处置时限",
    "反馈时间",
    "结案时间",
    "按期办结",
    "超期",
    "催办次数",
    "上报数",
    "标记",
    "案件ID",
];

const PAGE: i64 = 5000;

fn local(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        (t + Duration::hours(8))
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_default()
}

fn row(c: &Case, category_name: &str) -> Vec<String> {
    let flags: Vec<String> = c.flags.iter().flatten().cloned().collect();
    let on_time = match (c.status.as_str(), c.deadline, c.handled_at) {
        ("CLOSED", Some(d), Some(h)) => if h <= d { "是" } else { "否" }.to_owned(),
        ("CLOSED", None, _) => "是".to_owned(),
        _ => String::new(),
    };
    vec![
        c.case_no.clone(),
        c.status.clone(),
        c.unified_category.clone(),
        category_name.to_owned(),
        c.grid_code.clone(),
        c.region_code.to_string(),
        if c.assignee.is_empty() {
            c.owner.clone()
        } else {
            c.assignee.clone()
        },
        local(Some(c.first_reported_at)),
        local(c.registered_at),
        local(c.dispatched_at),
        local(c.deadline),
        local(c.handled_at),
        local(c.closed_at),
        on_time,
        if flags.iter().any(|f| f == "OVERDUE") {
            "是"
        } else {
            "否"
        }
        .to_owned(),
        c.urge_count.to_string(),
        c.report_count.to_string(),
        flags.join(" "),
        c.case_id.to_string(),
    ]
}

/// Writes the cases of `region`'s subtree first reported on local days `[from, to]` (merged
/// cases left out) to `out`; returns how many.
pub async fn write_cases(
    conn: &mut AsyncPgConnection,
    region: &RegionCode,
    from: NaiveDate,
    to: NaiveDate,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let start = from.and_hms_opt(0, 0, 0).context("start date")?.and_utc() - Duration::hours(8);
    let end = to
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .context("end date")?
        .and_utc()
        - Duration::hours(8);
    out.write_all("\u{feff}".as_bytes())?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    let mut after: Option<crate::domain::ids::CaseId> = None;
    let mut n = 0;
    loop {
        let mut q = cases::table
            .left_join(categories::table.on(categories::code.eq(cases::unified_category)))
            .filter(cases::region_code.like(format!("{region}%")))
            .filter(cases::first_reported_at.ge(start))
            .filter(cases::first_reported_at.lt(end))
            .filter(cases::status.ne("MERGED"))
            .order(cases::case_id)
            .limit(PAGE)
            .select((Case::as_select(), categories::name.nullable()))
            .into_boxed();
        if let Some(a) = after {
            q = q.filter(cases::case_id.gt(a));
        }
        let page: Vec<(Case, Option<String>)> = q.load(conn).await?;
        for (c, name) in &page {
            w.write_record(row(c, name.as_deref().unwrap_or_default()))?;
        }
        n += page.len();
        match page.last() {
            Some((c, _)) if page.len() as i64 == PAGE => after = Some(c.case_id),
            _ => break,
        }
    }
    w.flush()?;
    Ok(n)
}

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
    let n = write_cases(&mut conn, region, from, to, &mut buf).await?;
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
