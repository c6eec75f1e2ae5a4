//! The cases of a region as CSV (the county's monthly report): UTF-8 with a byte-order mark,
//! so office spreadsheet software opens the Chinese text correctly; times in China Standard
//! Time. Written by `gridhub export cases` and by ExportCases (the dashboard's download).

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel_async::AsyncPgConnection;
use futures::FutureExt;

use crate::domain::principal::{Principal, Scope};
use crate::store::audit::NewEvent;

use super::error::ApiError;
use super::{Context as AppContext, mutation};
use crate::store::cases::{self, Case};

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

/// Writes the cases of the `region` scope first reported on local days `[from, to]` (merged
/// cases left out) to `out`; returns how many.
pub async fn write_cases(
    conn: &mut AsyncPgConnection,
    region: &Scope,
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
        let page = cases::reported_between(conn, region, (start, end), after, PAGE).await?;
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

/// Days one export may span.
pub const MAX_DAYS: i64 = 366;

/// ExportCases: the CSV of the cases of `scope` (the caller's, or a subtree of it) first
/// reported on the China days `[from, to]`; the export is an audit event of the caller.
pub async fn cases(
    ctx: &AppContext,
    who: &Principal,
    scope: Scope,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Vec<u8>, ApiError> {
    if from > to {
        return Err(ApiError::invalid("to_date", "must not be before from_date"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::invalid(
            "to_date",
            format!("an export spans at most {MAX_DAYS} days"),
        ));
    }
    // Read where stale reads go (a replica within its bound); the export's audit event is
    // written on the primary, and the file is handed out only once it is.
    let mut buf = Vec::new();
    let n = {
        let mut conn = ctx.stale_ok().await?;
        write_cases(&mut conn, &scope, from, to, &mut buf)
            .await
            .map_err(|e| ApiError::Internal(format!("export: {e:#}")))?
    };
    mutation::audited(ctx, who, move |_conn, audit| {
        async move {
            audit.push(NewEvent::ok(
                "case.export",
                "case_export",
                &uuid::Uuid::now_v7().to_string(),
                scope.prefix(),
                None,
                Some(serde_json::json!({"from": from, "to": to, "cases": n})),
            ));
            Ok(buf)
        }
        .boxed()
    })
    .await
}
