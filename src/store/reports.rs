//! Intake of reports: locate (against the in-memory grid index), own, map, merge and store a
//! batch in a few set-based statements (one per step, not one per report), inside the
//! caller's transaction.
//!
//! Concurrency: the batch first takes transaction-scoped advisory locks on its
//! `client_report_id`s and then on the (category, map cell) keys its merge radii touch, each
//! in sorted order (so two batches cannot deadlock). Two concurrent sends of one report therefore run one after the
//! other, and two simultaneous reports of one pothole see each other's case.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Double, Int2, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::audit::{self, Actor, NewEvent};
use super::categories::{self, Unified};
use super::grid_index::GridCache;
use super::schema::reports;
use crate::domain::Violation;
use crate::domain::ids::{CaseId, ReportId};
use crate::domain::merge::{self, Candidate, Decision};
use crate::domain::pii::{Phone, Sealed};
use crate::domain::principal::Scope;
use crate::domain::region::RegionCode;
use crate::domain::report::{self, Outcome, ReportInput, flags};

/// The region a stored report was located in.
#[tracing::instrument(level = "debug", skip_all, fields(report_id = %id))]
pub async fn region_of(conn: &mut AsyncPgConnection, id: ReportId) -> QueryResult<RegionCode> {
    reports::table
        .find(id)
        .select(reports::region_code)
        .first(conn)
        .await
}

/// The answer for an accepted report.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub report_id: ReportId,
    pub case_id: CaseId,
    pub case_no: String,
    pub outcome: Outcome,
    pub flags: Vec<String>,
}

/// Why one report of a batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemError {
    Invalid(Vec<Violation>),
    Denied(String),
    Conflict(String),
}

/// The result for one report.
pub type ItemResult = Result<Accepted, ItemError>;

/// Who sent a report: where they may act and who they are (for the audit trail).
#[derive(Debug, Clone)]
pub struct Submitter {
    pub scope: Scope,
    pub actor: Actor,
}

/// One report of a batch with its sender; a batch may mix senders (grouped single submits).
#[derive(Debug, Clone)]
pub struct Item {
    pub by: Arc<Submitter>,
    pub report: Result<ReportInput, Vec<Violation>>,
}

/// Reports of a batch stored in one transaction at most. A batch of more is stored as several
/// transactions of nearby reports (see [`chunks`]).
pub const CHUNK: usize = 250;

/// Splits a batch into transactions of at most [`CHUNK`] reports, nearby reports together:
/// reports sorted by their (row, column) merge-lock cell, then cut into equal runs. Each
/// transaction holds the (category, cell) locks of its own reports only, and for a fraction of
/// the batch's time, so batches from neighbouring areas wait for each other only where they
/// touch. Safe because every report is idempotent on `client_report_id`: after a failure part
/// way, a resend of the whole batch returns the first result of every report already stored.
/// `places` are the reports' ids and locations (`None` for invalid items, which go first);
/// every report under one `client_report_id` goes with the first, so that which of them is
/// "first" stays the batch's order. Returns each chunk's indices in batch order.
pub fn chunks(places: &[Option<(Uuid, f64, f64)>]) -> Vec<Vec<usize>> {
    let n = places.len();
    if n <= CHUNK {
        return vec![(0..n).collect()];
    }
    let cell = merge::lock_cell;
    let mut first: HashMap<Uuid, (i64, i64, i64, usize)> = HashMap::new();
    let keys: Vec<(i64, i64, i64, usize)> = places
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some((id, lat, lng)) => *first.entry(*id).or_insert((1, cell(*lat), cell(*lng), i)),
            None => (0, 0, 0, i),
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (keys[i], i));
    let parts = n.div_ceil(CHUNK);
    (0..parts)
        .map(|k| {
            let mut c = order[k * n / parts..(k + 1) * n / parts].to_vec();
            c.sort_unstable();
            c
        })
        .collect()
}

/// A stored report.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reports, check_for_backend(diesel::pg::Pg))]
pub struct Report {
    pub report_id: ReportId,
    pub client_report_id: Uuid,
    pub payload_hash: Vec<u8>,
    pub source: i16,
    pub source_system: String,
    pub category_code: String,
    pub unified_category: String,
    pub title: String,
    pub description: String,
    pub lat: f64,
    pub lng: f64,
    pub claimed_grid_code: String,
    pub resolved_grid_code: String,
    pub region_code: RegionCode,
    pub owner: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub reporter_id: String,
    pub submitted_by: String,
    pub attachments: Vec<Option<String>>,
    pub case_id: CaseId,
    pub flags: Vec<Option<String>>,
    pub first_outcome: i16,
    pub first_case_id: CaseId,
    pub merge_reason: serde_json::Value,
    pub reporter_phone_enc: Option<Sealed<Phone>>,
    pub reporter_phone_index: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Existing {
    #[diesel(sql_type = SqlUuid)]
    client_report_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    payload_hash: Vec<u8>,
    #[diesel(sql_type = SqlUuid)]
    report_id: ReportId,
    #[diesel(sql_type = SqlUuid)]
    case_id: CaseId,
    #[diesel(sql_type = SqlUuid)]
    first_case_id: CaseId,
    #[diesel(sql_type = Int2)]
    first_outcome: i16,
    #[diesel(sql_type = Timestamptz)]
    received_at: DateTime<Utc>,
    #[diesel(sql_type = Array<diesel::sql_types::Nullable<Text>>)]
    flags: Vec<Option<String>>,
    #[diesel(sql_type = Text)]
    case_no: String,
    #[diesel(sql_type = Text)]
    first_case_no: String,
}

/// The finest region with a polygon covering a report's point.
struct Located {
    code: String,
    level: i16,
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Text)]
    fallback_owner: String,
}

#[derive(QueryableByName)]
struct Near {
    #[diesel(sql_type = Integer)]
    idx: i32,
    #[diesel(sql_type = SqlUuid)]
    case_id: CaseId,
    #[diesel(sql_type = Text)]
    case_no: String,
    #[diesel(sql_type = Double)]
    lat: f64,
    #[diesel(sql_type = Double)]
    lng: f64,
    #[diesel(sql_type = Timestamptz)]
    first_reported_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_reported_at: DateTime<Utc>,
}

/// A case as it is being built or extended by this batch.
struct CaseDraft {
    case_id: CaseId,
    case_no: String,
    existing: bool,
    category: String,
    grid_code: String,
    region_code: String,
    owner: String,
    lat: f64,
    lng: f64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    added: i32,
    flags: Vec<String>,
}

/// A report as it will be stored.
struct Row {
    item: usize,
    report_id: ReportId,
    unified: String,
    resolved_grid: String,
    region: String,
    owner: String,
    flags: Vec<String>,
    case: usize,
    outcome: Outcome,
    reason: serde_json::Value,
}

/// Where a report lies and who owns it.
struct Place {
    resolved_grid: String,
    region: String,
    flags: Vec<String>,
}

/// Stores a batch. `items` are valid reports (or their validation errors, passed through in
/// place); returns one result per item, in order. Records one audit event per new report
/// itself, by the report's sender, in the statement that writes the reports.
#[tracing::instrument(level = "debug", skip_all, fields(items = items.len()))]
pub async fn ingest(
    conn: &mut AsyncPgConnection,
    grids: &GridCache,
    items: Vec<Item>,
    retention: Duration,
) -> QueryResult<Vec<ItemResult>> {
    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut valid: Vec<(usize, ReportInput)> = Vec::new();
    let subs: Vec<Arc<Submitter>> = items.iter().map(|it| it.by.clone()).collect();
    for (i, it) in items.into_iter().map(|it| it.report).enumerate() {
        match it {
            Ok(r) => valid.push((i, r)),
            Err(v) => results[i] = Some(Err(ItemError::Invalid(v))),
        }
    }
    // 1. Serialize with concurrent sends of the same reports; then find resends, the grid
    // geometry's version and the unified categories, the three reads sent together
    // (pipelined: one round trip). The categories are resolved for every valid report, resent
    // or not, which costs less than a round trip of its own.
    let ids: BTreeSet<Uuid> = valid.iter().map(|(_, r)| r.client_report_id).collect();
    let ids: Vec<Uuid> = ids.into_iter().collect();
    if !ids.is_empty() {
        LockReportIds { b1: &ids }.execute(conn).await?;
    }
    let pairs: BTreeSet<(String, String)> = valid
        .iter()
        .map(|(_, r)| (r.source_system.clone(), r.category_code.clone()))
        .collect();
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    let (existing, geometry, mapped) = {
        let shared: &AsyncPgConnection = conn;
        futures::try_join!(
            async {
                if ids.is_empty() {
                    Ok(Vec::new())
                } else {
                    FindExisting { b1: &ids }
                        .load::<Existing>(&mut &*shared)
                        .await
                }
            },
            super::grid_index::current_version(shared),
            async {
                if pairs.is_empty() {
                    Ok(HashMap::new())
                } else {
                    categories::resolve(shared, &pairs).await
                }
            },
        )?
    };
    let existing: HashMap<Uuid, Existing> = existing
        .into_iter()
        .map(|e| (e.client_report_id, e))
        .collect();
    let stale_before = Utc::now() - retention;
    let mut fresh: Vec<(usize, ReportInput)> = Vec::new();
    let mut first_in_batch: HashMap<Uuid, (usize, Vec<u8>)> = HashMap::new();
    let mut duplicates: Vec<(usize, usize)> = Vec::new();
    for (i, r) in valid {
        if let Some(e) = existing.get(&r.client_report_id) {
            results[i] = Some(if e.payload_hash != r.payload_hash {
                Err(conflict(r.client_report_id))
            } else if e.received_at < stale_before {
                Ok(Accepted {
                    report_id: e.report_id,
                    case_id: e.case_id,
                    case_no: e.case_no.clone(),
                    outcome: Outcome::AlreadyReceived,
                    flags: texts(&e.flags),
                })
            } else {
                let outcome = Outcome::from_i16(e.first_outcome);
                Ok(Accepted {
                    report_id: e.report_id,
                    case_id: e.first_case_id,
                    case_no: e.first_case_no.clone(),
                    outcome,
                    flags: texts(&e.flags),
                })
            });
        } else if let Some((first, hash)) = first_in_batch.get(&r.client_report_id) {
            if *hash == r.payload_hash {
                duplicates.push((i, *first));
            } else {
                results[i] = Some(Err(conflict(r.client_report_id)));
            }
        } else {
            first_in_batch.insert(r.client_report_id, (i, r.payload_hash.clone()));
            fresh.push((i, r));
        }
    }

    // 2. Attachments must exist.
    let wanted: BTreeSet<&str> = fresh
        .iter()
        .flat_map(|(_, r)| r.attachments.iter().map(String::as_str))
        .collect();
    let known: HashMap<String, Vec<String>> = if wanted.is_empty() {
        HashMap::new()
    } else {
        super::attachments::existing(conn, &wanted.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .collect()
    };
    // An attachment uploaded from another region is unknown to this reporter.
    fresh.retain(|(i, r)| {
        let missing: Vec<Violation> = r
            .attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                !known
                    .get(*a)
                    .is_some_and(|regions| super::attachments::citable(&subs[*i].scope, regions))
            })
            .map(|(k, a)| {
                Violation::new(
                    format!("attachments[{k}]"),
                    format!("unknown attachment {a}; upload it first"),
                )
            })
            .collect();
        if missing.is_empty() {
            true
        } else {
            results[*i] = Some(Err(ItemError::Invalid(missing)));
            false
        }
    });

    // 3. Locate: the finest region whose polygon covers each point.
    let places = locate(conn, grids, geometry, &fresh).await?;
    let mut placed: Vec<(usize, ReportInput, Place)> = Vec::new();
    for ((i, r), place) in fresh.into_iter().zip(places) {
        match place {
            Some(p) if subs[i].scope.contains(&p.region) => placed.push((i, r, p)),
            Some(p) => {
                results[i] = Some(Err(ItemError::Denied(format!(
                    "the report lies in {}, outside your region {}",
                    p.region, subs[i].scope
                ))))
            }
            None => {
                results[i] = Some(Err(ItemError::Invalid(vec![Violation::new(
                    "location",
                    "lies outside every known region; give grid_code",
                )])))
            }
        }
    }
    // Owners: the nearest fallback owner up the hierarchy.
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    // Only reports outside every grid need an owner from the hierarchy.
    for (_, _, p) in placed
        .iter()
        .filter(|(_, _, p)| p.flags.iter().any(|f| f == flags::OUTSIDE_GRID))
    {
        prefixes.extend(ancestors(&p.region));
    }
    let owners: HashMap<String, String> = if prefixes.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<Owner> = FindOwners {
            b1: prefixes.into_iter().collect::<Vec<_>>(),
        }
        .load(conn)
        .await?;
        rows.into_iter()
            .map(|o| (o.code, o.fallback_owner))
            .collect()
    };
    let owner_of = |region: &str| {
        ancestors(region)
            .into_iter()
            .rev()
            .find_map(|c| owners.get(&c).filter(|o| !o.is_empty()).cloned())
            .unwrap_or_default()
    };

    // 4. Categories (resolved in step 1).
    let unified_of = |r: &ReportInput| {
        mapped
            .get(&(r.source_system.clone(), r.category_code.clone()))
            .cloned()
    };

    // 5. Merge: lock (category, map cell) for every cell a report's merge radius touches —
    // two reports close enough to merge always share the cell of one of them, while reports
    // far apart or of other categories do not wait for each other — then fetch open cases
    // near each report and decide in order.
    let mut cells: BTreeSet<String> = BTreeSet::new();
    for (_, r, _) in &placed {
        if let Some(u) = unified_of(r) {
            cells.extend(merge::lock_cells(&u.code, (r.lat, r.lng), u.rule.radius_m));
        }
    }
    if !cells.is_empty() {
        LockCells {
            b1: cells.iter().collect::<Vec<_>>(),
        }
        .execute(conn)
        .await?;
    }
    let near = candidates(conn, &placed, &unified_of).await?;
    let mut drafts: Vec<CaseDraft> = Vec::new();
    let mut draft_of: HashMap<CaseId, usize> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for (k, (i, r, p)) in placed.iter().enumerate() {
        let unified = unified_of(r);
        let mut rflags = p.flags.clone();
        let owner = if rflags.iter().any(|f| f == flags::OUTSIDE_GRID) {
            owner_of(&p.region)
        } else {
            String::new()
        };
        let (decision, category) = match &unified {
            None => {
                rflags.push(flags::UNMAPPED_CATEGORY.to_owned());
                (Decision::Triage, String::new())
            }
            Some(u) => {
                let mut cands: Vec<Candidate<CaseId>> = near
                    .get(&k)
                    .map(|v| v.iter().map(|n| n.0.clone()).collect())
                    .unwrap_or_default();
                for n in near.get(&k).into_iter().flatten() {
                    draft_of.entry(n.0.case_id).or_insert_with(|| {
                        drafts.push(CaseDraft {
                            case_id: n.0.case_id,
                            case_no: n.1.clone(),
                            existing: true,
                            category: u.code.clone(),
                            grid_code: String::new(),
                            region_code: String::new(),
                            owner: String::new(),
                            lat: n.0.lat,
                            lng: n.0.lng,
                            first: n.0.first_reported_at,
                            last: n.0.last_reported_at,
                            added: 0,
                            flags: Vec::new(),
                        });
                        drafts.len() - 1
                    });
                }
                // Cases opened or extended earlier in this batch, with their current span.
                for c in cands.iter_mut() {
                    if let Some(d) = draft_of.get(&c.case_id).map(|x| &drafts[*x]) {
                        c.first_reported_at = d.first;
                        c.last_reported_at = d.last;
                    }
                }
                for d in drafts
                    .iter()
                    .filter(|d| !d.existing && d.category == u.code)
                {
                    cands.push(Candidate {
                        case_id: d.case_id,
                        lat: d.lat,
                        lng: d.lng,
                        first_reported_at: d.first,
                        last_reported_at: d.last,
                    });
                }
                (
                    merge::decide((r.lat, r.lng), r.occurred_at, u.rule, &cands),
                    u.code.clone(),
                )
            }
        };
        let (case, outcome) = match &decision {
            Decision::Joined { case_id, .. } => (draft_of[case_id], Outcome::Merged),
            Decision::Opened { .. } | Decision::Triage => {
                let case_id = CaseId::generate();
                let mut cflags: Vec<String> = p
                    .flags
                    .iter()
                    .filter(|f| *f == flags::OUTSIDE_GRID)
                    .cloned()
                    .collect();
                if matches!(decision, Decision::Triage) {
                    cflags.push(flags::TRIAGE.to_owned());
                }
                drafts.push(CaseDraft {
                    case_id,
                    case_no: String::new(),
                    existing: false,
                    category: category.clone(),
                    grid_code: p.resolved_grid.clone(),
                    region_code: p.region.clone(),
                    owner: owner.clone(),
                    lat: r.lat,
                    lng: r.lng,
                    first: r.occurred_at,
                    last: r.occurred_at,
                    added: 0,
                    flags: cflags,
                });
                draft_of.insert(case_id, drafts.len() - 1);
                (drafts.len() - 1, Outcome::Created)
            }
        };
        let d = &mut drafts[case];
        d.added += 1;
        d.first = d.first.min(r.occurred_at);
        d.last = d.last.max(r.occurred_at);
        rows.push(Row {
            item: *i,
            report_id: ReportId::generate(),
            unified: category,
            resolved_grid: p.resolved_grid.clone(),
            region: p.region.clone(),
            owner,
            flags: rflags,
            case,
            outcome,
            reason: serde_json::to_value(&decision).unwrap_or_default(),
        });
    }

    // 6. Number the new cases, then write them, the cases this batch extends, the reports and
    // their audit events, in one statement (see [`WriteIntake`]).
    number_cases(conn, &mut drafts).await?;
    // One row per placed report, in order.
    debug_assert_eq!(rows.len(), placed.len());
    let inputs: Vec<&ReportInput> = placed.iter().map(|(_, r, _)| r).collect();
    let events: Vec<String> = rows
        .iter()
        .zip(&inputs)
        .map(|(row, r)| {
            let d = &drafts[row.case];
            let event = NewEvent::ok(
                "report.accept",
                "report",
                &row.report_id.to_string(),
                &row.region,
                None,
                Some(
                    crate::domain::payloads::ReportAccepted {
                        client_report_id: Some(r.client_report_id),
                        source: r.source,
                        category_code: r.category_code.clone(),
                        unified_category: row.unified.clone(),
                        case_id: Some(d.case_id),
                        case_no: d.case_no.clone(),
                        outcome: if row.outcome == Outcome::Merged {
                            "MERGED"
                        } else {
                            "CREATED"
                        }
                        .to_owned(),
                        flags: row.flags.clone(),
                        reason: row.reason.clone(),
                    }
                    .to_json(),
                ),
            );
            audit::text(&subs[row.item].actor, &event)
        })
        .collect();
    write(conn, &inputs, &rows, &drafts, &subs, &events).await?;
    for row in &rows {
        let d = &drafts[row.case];
        results[row.item] = Some(Ok(Accepted {
            report_id: row.report_id,
            case_id: d.case_id,
            case_no: d.case_no.clone(),
            outcome: row.outcome,
            flags: row.flags.clone(),
        }));
    }
    for (dup, first) in duplicates {
        results[dup] = results[first].clone();
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ItemError::Invalid(vec![]))))
        .collect())
}

fn conflict(id: Uuid) -> ItemError {
    ItemError::Conflict(format!(
        "client_report_id {id} was already used for a different report; use a new id"
    ))
}

fn texts(v: &[Option<String>]) -> Vec<String> {
    v.iter().flatten().cloned().collect()
}

/// The code and every ancestor code, top down.
fn ancestors(code: &str) -> Vec<String> {
    [2, 4, 6, 9, 12, 15, 18]
        .into_iter()
        .filter(|l| *l <= code.len())
        .map(|l| code[..l].to_owned())
        .collect()
}

/// Places each report: its grid, or the smallest known region containing it, or its claimed
/// grid when no polygon contains it. `None`: nowhere known.
async fn locate(
    conn: &mut AsyncPgConnection,
    grids: &GridCache,
    geometry: i64,
    reports: &[(usize, ReportInput)],
) -> QueryResult<Vec<Option<Place>>> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let index = grids.at(conn, geometry).await?;
    let found: HashMap<usize, Located> = reports
        .iter()
        .enumerate()
        .filter_map(|(k, (_, r))| {
            index.locate(r.lat, r.lng).map(|(code, level)| {
                (
                    k,
                    Located {
                        code: code.to_owned(),
                        level,
                    },
                )
            })
        })
        .collect();
    let claims: Vec<String> = reports
        .iter()
        .filter_map(|(_, r)| r.claimed_grid.as_ref().map(|g| g.to_string()))
        .collect();
    let claimed_known: BTreeSet<String> = if claims.is_empty() {
        BTreeSet::new()
    } else {
        super::regions::existing(conn, &Scope::All, &claims)
            .await?
            .into_iter()
            .collect()
    };
    Ok(reports
        .iter()
        .enumerate()
        .map(|(k, (_, r))| {
            let claim = r.claimed_grid.as_ref().map(RegionCode::as_str);
            let mut fl = Vec::new();
            let place = match found.get(&k) {
                Some(l) if l.level >= 6 => {
                    if claim.is_some_and(|c| c != l.code) {
                        fl.push(flags::GRID_MISMATCH.to_owned());
                    }
                    Place {
                        resolved_grid: l.code.clone(),
                        region: l.code.clone(),
                        flags: fl,
                    }
                }
                other => {
                    fl.push(flags::OUTSIDE_GRID.to_owned());
                    if claim.is_some() {
                        fl.push(flags::GRID_MISMATCH.to_owned());
                    }
                    let region = match (other, claim) {
                        (Some(l), _) => l.code.clone(),
                        (None, Some(c)) if claimed_known.contains(c) => c.to_owned(),
                        _ => return None,
                    };
                    Place {
                        resolved_grid: String::new(),
                        region,
                        flags: fl,
                    }
                }
            };
            Some(place)
        })
        .collect())
}

/// Open cases of each report's category inside its radius box and time window.
async fn candidates(
    conn: &mut AsyncPgConnection,
    placed: &[(usize, ReportInput, Place)],
    unified_of: &(dyn Fn(&ReportInput) -> Option<Unified> + Sync),
) -> QueryResult<HashMap<usize, Vec<(Candidate<CaseId>, String)>>> {
    let mut idx = Vec::new();
    let (mut cat, mut lat, mut lng, mut dlat, mut dlng, mut t0, mut t1) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (k, (_, r, _)) in placed.iter().enumerate() {
        let Some(u) = unified_of(r) else { continue };
        let (a, b) = merge::bbox_degrees(r.lat, u.rule.radius_m);
        idx.push(k as i32);
        cat.push(u.code);
        lat.push(r.lat);
        lng.push(r.lng);
        dlat.push(a);
        dlng.push(b);
        t0.push(r.occurred_at - u.rule.window);
        t1.push(r.occurred_at + u.rule.window);
    }
    if idx.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Near> = Candidates {
        b1: idx,
        b2: cat,
        b3: lat,
        b4: lng,
        b5: dlat,
        b6: dlng,
        b7: t0,
        b8: t1,
    }
    .load(conn)
    .await?;
    let mut out: HashMap<usize, Vec<(Candidate<CaseId>, String)>> = HashMap::new();
    for n in rows {
        out.entry(n.idx as usize).or_default().push((
            Candidate {
                case_id: n.case_id,
                lat: n.lat,
                lng: n.lng,
                first_reported_at: n.first_reported_at,
                last_reported_at: n.last_reported_at,
            },
            n.case_no,
        ));
    }
    Ok(out)
}

async fn number_cases(conn: &mut AsyncPgConnection, drafts: &mut [CaseDraft]) -> QueryResult<()> {
    let n = drafts.iter().filter(|d| !d.existing).count();
    if n == 0 {
        return Ok(());
    }
    let serials: Vec<Serial> = NextSerials { b1: n as i32 }.load(conn).await?;
    let year = report::china_year(Utc::now());
    for (d, s) in drafts.iter_mut().filter(|d| !d.existing).zip(serials) {
        d.case_no = report::case_no(report::town_of(&d.region_code), year, s.serial);
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Serial {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    serial: i64,
}

/// Writes the batch: its new cases, the existing cases it extends, its reports (`inputs[k]` is
/// the input of `rows[k]`) and their audit events (`events`, see [`audit::text`]), in one call.
async fn write(
    conn: &mut AsyncPgConnection,
    inputs: &[&ReportInput],
    rows: &[Row],
    drafts: &[CaseDraft],
    subs: &[Arc<Submitter>],
    events: &[String],
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let new: Vec<&CaseDraft> = drafts.iter().filter(|d| !d.existing).collect();
    let old: Vec<&CaseDraft> = drafts
        .iter()
        .filter(|d| d.existing && d.added > 0)
        .collect();
    WriteIntake {
        case_ids: new.iter().map(|d| d.case_id).collect::<Vec<_>>(),
        case_nos: new.iter().map(|d| d.case_no.as_str()).collect::<Vec<_>>(),
        case_cats: new.iter().map(|d| d.category.as_str()).collect::<Vec<_>>(),
        case_grids: new.iter().map(|d| d.grid_code.as_str()).collect::<Vec<_>>(),
        case_regions: new
            .iter()
            .map(|d| d.region_code.as_str())
            .collect::<Vec<_>>(),
        case_owners: new.iter().map(|d| d.owner.as_str()).collect::<Vec<_>>(),
        case_lats: new.iter().map(|d| d.lat).collect::<Vec<_>>(),
        case_lngs: new.iter().map(|d| d.lng).collect::<Vec<_>>(),
        case_firsts: new.iter().map(|d| d.first).collect::<Vec<_>>(),
        case_lasts: new.iter().map(|d| d.last).collect::<Vec<_>>(),
        case_counts: new.iter().map(|d| d.added).collect::<Vec<_>>(),
        case_flags: new.iter().map(|d| d.flags.join(",")).collect::<Vec<_>>(),
        ext_ids: old.iter().map(|d| d.case_id).collect::<Vec<_>>(),
        ext_counts: old.iter().map(|d| d.added).collect::<Vec<_>>(),
        ext_firsts: old.iter().map(|d| d.first).collect::<Vec<_>>(),
        ext_lasts: old.iter().map(|d| d.last).collect::<Vec<_>>(),
        r_ids: rows.iter().map(|x| x.report_id).collect::<Vec<_>>(),
        r_cids: inputs
            .iter()
            .map(|x| x.client_report_id)
            .collect::<Vec<_>>(),
        r_hashes: inputs
            .iter()
            .map(|x| x.payload_hash.as_slice())
            .collect::<Vec<_>>(),
        r_sources: inputs.iter().map(|x| x.source).collect::<Vec<_>>(),
        r_systems: inputs
            .iter()
            .map(|x| x.source_system.as_str())
            .collect::<Vec<_>>(),
        r_codes: inputs
            .iter()
            .map(|x| x.category_code.as_str())
            .collect::<Vec<_>>(),
        r_unified: rows.iter().map(|x| x.unified.as_str()).collect::<Vec<_>>(),
        r_titles: inputs.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(),
        r_descriptions: inputs
            .iter()
            .map(|x| x.description.as_str())
            .collect::<Vec<_>>(),
        r_lats: inputs.iter().map(|x| x.lat).collect::<Vec<_>>(),
        r_lngs: inputs.iter().map(|x| x.lng).collect::<Vec<_>>(),
        r_claims: inputs
            .iter()
            .map(|x| {
                x.claimed_grid
                    .as_ref()
                    .map(|g| g.to_string())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>(),
        r_grids: rows
            .iter()
            .map(|x| x.resolved_grid.as_str())
            .collect::<Vec<_>>(),
        r_regions: rows.iter().map(|x| x.region.as_str()).collect::<Vec<_>>(),
        r_owners: rows.iter().map(|x| x.owner.as_str()).collect::<Vec<_>>(),
        r_occurred: inputs.iter().map(|x| x.occurred_at).collect::<Vec<_>>(),
        r_reporters: inputs
            .iter()
            .map(|x| x.reporter_id.as_str())
            .collect::<Vec<_>>(),
        r_attachments: inputs
            .iter()
            .map(|x| x.attachments.join(","))
            .collect::<Vec<_>>(),
        r_submitters: rows
            .iter()
            .map(|x| subs[x.item].actor.sub.as_str())
            .collect::<Vec<_>>(),
        r_cases: rows
            .iter()
            .map(|x| drafts[x.case].case_id)
            .collect::<Vec<_>>(),
        r_flags: rows.iter().map(|x| x.flags.join(",")).collect::<Vec<_>>(),
        r_outcomes: rows.iter().map(|x| x.outcome as i16).collect::<Vec<_>>(),
        r_reasons: rows
            .iter()
            .map(|x| x.reason.to_string())
            .collect::<Vec<_>>(),
        r_phones: inputs
            .iter()
            .map(|x| x.reporter_phone.as_ref().map(|p| p.sealed.blob()))
            .collect::<Vec<_>>(),
        r_phone_ixs: inputs
            .iter()
            .map(|x| x.reporter_phone.as_ref().map(|p| p.index.as_slice()))
            .collect::<Vec<_>>(),
        events,
    }
    .execute(conn)
    .await?;
    Ok(())
}

/// One report, if it lies within `prefix`.
#[tracing::instrument(level = "debug", skip_all, fields(region = scope.prefix(), report_id = %id))]
pub async fn get(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: ReportId,
) -> QueryResult<Option<Report>> {
    let prefix = scope.prefix();
    reports::table
        .find(id)
        .filter(reports::region_code.like(format!("{prefix}%")))
        .select(Report::as_select())
        .first(conn)
        .await
        .optional()
}

/// Filter for listing reports; `prefix` is the region scope.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub prefix: String,
    pub case_id: Option<CaseId>,
    pub unified_category: Option<String>,
    pub flag: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Reports matching the filter before `before` (report ids are time-ordered), newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &ReportFilter,
    before: Option<ReportId>,
    limit: i64,
) -> QueryResult<Vec<Report>> {
    let mut q = reports::table
        .filter(reports::region_code.like(format!("{}%", f.prefix)))
        .order(reports::report_id.desc())
        .limit(limit)
        .select(Report::as_select())
        .into_boxed();
    if let Some(c) = f.case_id {
        q = q.filter(reports::case_id.eq(c));
    }
    if let Some(u) = &f.unified_category {
        q = q.filter(reports::unified_category.eq(u.clone()));
    }
    if let Some(fl) = &f.flag {
        q = q.filter(reports::flags.contains(vec![Some(fl.clone())]));
    }
    if let Some(s) = f.start {
        q = q.filter(reports::received_at.ge(s));
    }
    if let Some(e) = f.end {
        q = q.filter(reports::received_at.lt(e));
    }
    if let Some(b) = before {
        q = q.filter(reports::report_id.lt(b));
    }
    q.load(conn).await
}

crate::prepared!(struct LockReportIds = "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended(x::text, 7270010) AS k FROM unnest($1::uuid[]) x ORDER BY 1) s" { b1: B1 => Array<SqlUuid> });
// One index probe per id (a LATERAL with LIMIT 1, which the planner cannot turn into a
// join): with `= ANY` or a plain join it kept choosing plans that scan all of `reports`.
crate::prepared!(struct FindExisting = "SELECT r.client_report_id, r.payload_hash, r.report_id, r.case_id, r.first_case_id, r.first_outcome, r.received_at, r.flags,
                    c.case_no, f.case_no AS first_case_no
               FROM unnest($1::uuid[]) AS k(id)
               CROSS JOIN LATERAL (SELECT * FROM reports x WHERE x.client_report_id = k.id LIMIT 1) r
               JOIN cases c ON c.case_id = r.case_id JOIN cases f ON f.case_id = r.first_case_id" { b1: B1 => Array<SqlUuid> });
crate::prepared!(struct FindOwners = "SELECT code, fallback_owner FROM regions WHERE code = ANY($1)" { b1: B1 => Array<Text> });
crate::prepared!(struct LockCells = "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended(c, 7270011) AS k FROM unnest($1::text[]) c ORDER BY 1) s" { b1: B1 => Array<Text> });
// The box test is answered by the open cases' SP-GiST index on `location` (migration 12).
/// Open cases of the same category near each report and within its time window. The finished
/// statuses are spelled here for the planner (a literal predicate); a test checks them against
/// `Status::FINISHED`, the rule's home.
const CANDIDATES_SQL: &str = "SELECT p.k AS idx, c.case_id, c.case_no, c.lat, c.lng, c.first_reported_at, c.last_reported_at
           FROM unnest($1::int4[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::timestamptz[], $8::timestamptz[])
                AS p(k, cat, lat, lng, dlat, dlng, t0, t1)
           CROSS JOIN LATERAL (
               SELECT * FROM cases c
                WHERE c.location && ST_MakeEnvelope(p.lng - p.dlng, p.lat - p.dlat, p.lng + p.dlng, p.lat + p.dlat, 4326)
                  AND c.status NOT IN ('CLOSED', 'VOID', 'MERGED')
                  AND c.unified_category = p.cat
                  AND c.last_reported_at >= p.t0 AND c.first_reported_at <= p.t1) c";
crate::prepared!(struct Candidates = CANDIDATES_SQL { b1: B1 => Array<Integer>, b2: B2 => Array<Text>, b3: B3 => Array<Double>, b4: B4 => Array<Double>, b5: B5 => Array<Double>, b6: B6 => Array<Double>, b7: B7 => Array<Timestamptz>, b8: B8 => Array<Timestamptz> });
crate::prepared!(struct NextSerials = "SELECT nextval('case_serial') AS serial FROM generate_series(1, $1)" { b1: B1 => Integer });
// The intake's write, one round trip (`intake_write`, migration 12): new cases, the existing
// cases the batch extends, its reports and their audit events, each bound to the function's
// parameter of the same name.
crate::prepared!(struct WriteIntake = call "intake_write" {
    case_ids: CaseIds => Array<SqlUuid>,
    case_nos: CaseNos => Array<Text>,
    case_cats: CaseCats => Array<Text>,
    case_grids: CaseGrids => Array<Text>,
    case_regions: CaseRegions => Array<Text>,
    case_owners: CaseOwners => Array<Text>,
    case_lats: CaseLats => Array<Double>,
    case_lngs: CaseLngs => Array<Double>,
    case_firsts: CaseFirsts => Array<Timestamptz>,
    case_lasts: CaseLasts => Array<Timestamptz>,
    case_counts: CaseCounts => Array<Integer>,
    case_flags: CaseFlags => Array<Text>,
    ext_ids: ExtIds => Array<SqlUuid>,
    ext_counts: ExtCounts => Array<Integer>,
    ext_firsts: ExtFirsts => Array<Timestamptz>,
    ext_lasts: ExtLasts => Array<Timestamptz>,
    r_ids: RIds => Array<SqlUuid>,
    r_cids: RCids => Array<SqlUuid>,
    r_hashes: RHashes => Array<diesel::sql_types::Bytea>,
    r_sources: RSources => Array<Int2>,
    r_systems: RSystems => Array<Text>,
    r_codes: RCodes => Array<Text>,
    r_unified: RUnified => Array<Text>,
    r_titles: RTitles => Array<Text>,
    r_descriptions: RDescriptions => Array<Text>,
    r_lats: RLats => Array<Double>,
    r_lngs: RLngs => Array<Double>,
    r_claims: RClaims => Array<Text>,
    r_grids: RGrids => Array<Text>,
    r_regions: RRegions => Array<Text>,
    r_owners: ROwners => Array<Text>,
    r_occurred: ROccurred => Array<Timestamptz>,
    r_reporters: RReporters => Array<Text>,
    r_attachments: RAttachments => Array<Text>,
    r_submitters: RSubmitters => Array<Text>,
    r_cases: RCases => Array<SqlUuid>,
    r_flags: RFlags => Array<Text>,
    r_outcomes: ROutcomes => Array<Int2>,
    r_reasons: RReasons => Array<Text>,
    r_phones: RPhones => Array<diesel::sql_types::Nullable<diesel::sql_types::Bytea>>,
    r_phone_ixs: RPhoneIxs => Array<diesel::sql_types::Nullable<diesel::sql_types::Bytea>>,
    events: Events => Array<Text>,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidate_query_skips_exactly_the_finished_statuses() {
        let finished: Vec<String> = crate::domain::workflow::Status::FINISHED
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let predicate = format!("c.status NOT IN ({})", finished.join(", "));
        assert!(CANDIDATES_SQL.contains(&predicate), "{predicate}");
    }

    #[test]
    fn small_batches_are_one_transaction() {
        let places = vec![Some((Uuid::nil(), 29.0, 106.0)); CHUNK];
        assert_eq!(chunks(&places), vec![(0..CHUNK).collect::<Vec<_>>()]);
        assert_eq!(chunks(&[]), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn large_batches_split_into_nearby_runs() {
        // 1,000 reports scattered over 0.4° × 0.25°, in a shuffled order, and two invalid.
        let mut places: Vec<Option<(Uuid, f64, f64)>> = (0..1000u32)
            .map(|i| {
                let k = i.wrapping_mul(7919) % 1000;
                Some((
                    Uuid::from_u128(i.into()),
                    28.5 + (k / 40) as f64 * 0.01,
                    106.5 + (k % 40) as f64 * 0.01 + 0.005,
                ))
            })
            .collect();
        places[3] = None;
        places[700] = None;
        // A resend of report 10 elsewhere (another payload) goes with report 10.
        let ten = places[10].unwrap();
        places[999] = Some((ten.0, 28.74, 106.89));
        let parts = chunks(&places);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|c| c.len() == 250 && c.is_sorted()));
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "every report exactly once"
        );
        assert!(parts[0].contains(&3) && parts[0].contains(&700));
        assert!(parts.iter().any(|c| c.contains(&10) && c.contains(&999)));
        // Rows of lock cells: each chunk's rows come at or after the previous chunk's.
        let rows = |c: &Vec<usize>| {
            let r: Vec<i64> = c
                .iter()
                .filter(|&&i| i != 999)
                .filter_map(|&i| places[i])
                .map(|(_, lat, _)| merge::lock_cell(lat))
                .collect();
            (*r.iter().min().unwrap(), *r.iter().max().unwrap())
        };
        for w in parts.windows(2) {
            assert!(rows(&w[0]).1 <= rows(&w[1]).0);
        }
    }
}
