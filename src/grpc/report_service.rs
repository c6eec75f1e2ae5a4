//! ReportService: reports into one net (intake, offline batches, attachments, browsing).

use chrono::Utc;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::pagination::Page;
use super::pb::report_service_server::ReportService;
use super::pb::{self, sync_report_result};
use super::{State, convert, optional_uuid, principal, requested_scope, time_range, uuid_field};
use crate::app::error::ApiError;
use crate::app::reports::{item_error, submitter};
use crate::app::{self};
use crate::attachments::Upload;
use crate::crypto::PiiCipher;
use crate::domain::Violation;
use crate::domain::pii::Phone;
use crate::domain::region::RegionCode;
use crate::domain::report::{MAX_ATTACHMENTS, MAX_BATCH, Outcome, ReportInput};

use crate::intake::Intake;
use crate::store::reports::{self, Accepted, Item, ItemError, ReportFilter};

/// The ReportService implementation.
pub struct ReportApi {
    pub state: State,
    /// Group commit for single submissions.
    pub intake: Intake,
}

fn too_long(s: &str, max: usize) -> bool {
    s.chars().count() > max
}

/// Validates a report from the wire; every violation is collected, paths prefixed by `at`.
pub fn report_input(
    r: &pb::Report,
    at: &str,
    pii: &PiiCipher,
) -> Result<ReportInput, Vec<Violation>> {
    let f = |name: &str| format!("{at}{name}");
    // The edge check, for a report of a batch (it fails alone, not its neighbours).
    let mut v = super::edge::check(r, at);
    let client_report_id = Uuid::parse_str(&r.client_report_id)
        .map_err(|_| v.push(Violation::new(f("client_report_id"), "must be a UUID")))
        .ok();
    let source = match pb::ReportSource::try_from(r.source) {
        Ok(pb::ReportSource::Unspecified) | Err(_) => {
            v.push(Violation::new(
                f("source"),
                "must be one of GRID_APP, HOTLINE_12345, WINDOW, WEB, LINE_SYSTEM",
            ));
            0
        }
        Ok(s) => s as i16,
    };
    if source == pb::ReportSource::LineSystem as i16 && r.source_system.trim().is_empty() {
        v.push(Violation::new(
            f("source_system"),
            "names the line system for LINE_SYSTEM reports",
        ));
    }
    if too_long(&r.source_system, 64) {
        v.push(Violation::new(f("source_system"), "at most 64 characters"));
    }
    if r.category_code.trim().is_empty() || too_long(&r.category_code, 64) {
        v.push(Violation::new(
            f("category_code"),
            "required, at most 64 characters",
        ));
    }
    if r.title.trim().is_empty() || too_long(&r.title, 200) {
        v.push(Violation::new(
            f("title"),
            "required, at most 200 characters",
        ));
    }
    if too_long(&r.description, 5000) {
        v.push(Violation::new(f("description"), "at most 5000 characters"));
    }
    let (lat, lng) = match &r.location {
        None => {
            v.push(Violation::new(f("location"), "required"));
            (0.0, 0.0)
        }
        Some(l) => {
            if !(l.lat.is_finite() && (-90.0..=90.0).contains(&l.lat)) {
                v.push(Violation::new(
                    f("location.lat"),
                    "must be between -90 and 90",
                ));
            }
            if !(l.lng.is_finite() && (-180.0..=180.0).contains(&l.lng)) {
                v.push(Violation::new(
                    f("location.lng"),
                    "must be between -180 and 180",
                ));
            }
            (l.lat, l.lng)
        }
    };
    let claimed_grid = match r.grid_code.as_str() {
        "" => None,
        g => match RegionCode::parse(g) {
            Ok(c) if c.level().is_grid() => Some(c),
            _ => {
                v.push(Violation::new(
                    f("grid_code"),
                    "a grid code has 15 digits (micro-grid 18)",
                ));
                None
            }
        },
    };
    let now = Utc::now();
    let occurred_at = match r.occurred_at.as_ref().map(convert::from_timestamp) {
        Some(Some(t))
            if t <= now + chrono::Duration::minutes(5) && t.timestamp() >= 946_684_800 =>
        {
            Some(t)
        }
        Some(Some(_)) | Some(None) => {
            v.push(Violation::new(
                f("occurred_at"),
                "must be a time after 2000 and not in the future",
            ));
            None
        }
        None => {
            v.push(Violation::new(f("occurred_at"), "required"));
            None
        }
    };
    if too_long(&r.reporter_id, 64) {
        v.push(Violation::new(f("reporter_id"), "at most 64 characters"));
    }
    let reporter_phone = match r.reporter_phone.as_str() {
        "" => None,
        raw => match Phone::parse(raw, &f("reporter_phone")) {
            Ok(p) => Some(pii.seal_indexed(&p)),
            Err(e) => {
                v.push(e);
                None
            }
        },
    };
    if r.attachments.len() > MAX_ATTACHMENTS {
        v.push(Violation::new(
            f("attachments"),
            format!("at most {MAX_ATTACHMENTS}"),
        ));
    }
    for (k, a) in r.attachments.iter().enumerate() {
        if a.len() != 64
            || !a
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            v.push(Violation::new(
                f(&format!("attachments[{k}]")),
                "an attachment id is 64 lowercase hex digits",
            ));
        }
    }
    let (Some(client_report_id), Some(occurred_at), true) =
        (client_report_id, occurred_at, v.is_empty())
    else {
        return Err(v);
    };
    Ok(ReportInput {
        client_report_id,
        source,
        source_system: r.source_system.trim().to_owned(),
        category_code: r.category_code.trim().to_owned(),
        title: r.title.trim().to_owned(),
        description: r.description.clone(),
        lat,
        lng,
        claimed_grid,
        occurred_at,
        reporter_id: r.reporter_id.clone(),
        attachments: r.attachments.clone(),
        reporter_phone,
        payload_hash: payload_hash(r),
    })
}

/// SHA-256 of the client-set fields only.
fn payload_hash(r: &pb::Report) -> Vec<u8> {
    let client = pb::Report {
        report_id: String::new(),
        received_at: None,
        resolved_grid_code: String::new(),
        unified_category: String::new(),
        case_id: String::new(),
        flags: Vec::new(),
        region_code: String::new(),
        owner: String::new(),
        merge_reason_json: String::new(),
        ..r.clone()
    };
    Sha256::digest(client.encode_to_vec()).to_vec()
}

fn accepted(a: Accepted) -> pb::SubmitReportResult {
    let outcome = match a.outcome {
        Outcome::Created => pb::ReportOutcome::Created,
        Outcome::Merged => pb::ReportOutcome::Merged,
        Outcome::AlreadyReceived => pb::ReportOutcome::AlreadyReceived,
    };
    pb::SubmitReportResult {
        report_id: a.report_id.to_string(),
        case_id: a.case_id.to_string(),
        outcome: outcome as i32,
        flags: a.flags,
        case_no: a.case_no,
    }
}

/// A per-report error as a google.rpc.Status, with the same details a whole-call error has.
fn rpc_status(e: ItemError) -> tonic_types::pb::Status {
    let s: Status = item_error(e).into();
    let plain = || tonic_types::pb::Status {
        code: s.code() as i32,
        message: s.message().to_owned(),
        details: Vec::new(),
    };
    if s.details().is_empty() {
        return plain();
    }
    // Rich errors carry the whole google.rpc.Status (code, message, BadRequest) in details.
    tonic_types::pb::Status::decode(s.details()).unwrap_or_else(|_| plain())
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn submit_report(
        &self,
        req: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResult>, Status> {
        let p = principal(&req)?;
        let Some(r) = req.get_ref().report.as_ref() else {
            return Err(ApiError::invalid("report", "required").into());
        };
        let item = report_input(r, "report.", &self.state.app.pii);
        if let Err(v) = item {
            return Err(ApiError::InvalidArgument(v).into());
        }
        match self
            .intake
            .submit(Item {
                by: submitter(&p),
                report: item,
            })
            .await?
        {
            Ok(a) => Ok(Response::new(accepted(a))),
            Err(ItemError::Invalid(v)) => Err(ApiError::InvalidArgument(
                v.into_iter()
                    .map(|x| Violation::new(format!("report.{}", x.field), x.description))
                    .collect(),
            )
            .into()),
            Err(e) => Err(item_error(e).into()),
        }
    }

    async fn sync_reports(
        &self,
        req: Request<pb::SyncReportsRequest>,
    ) -> Result<Response<pb::SyncReportsResponse>, Status> {
        let p = principal(&req)?;
        let batch = &req.get_ref().reports;
        if batch.is_empty() || batch.len() > MAX_BATCH {
            return Err(ApiError::invalid(
                "reports",
                format!("1 to {MAX_BATCH} reports per batch"),
            )
            .into());
        }
        let pii = &self.state.app.pii;
        let inputs = batch.iter().map(|r| report_input(r, "", pii)).collect();
        let results = app::reports::sync(&self.state.app, &p, inputs)
            .await?
            .into_iter()
            .map(|r| pb::SyncReportResult {
                result: Some(match r {
                    Ok(a) => sync_report_result::Result::Ok(accepted(a)),
                    Err(e) => sync_report_result::Result::Error(rpc_status(e)),
                }),
            })
            .collect();
        Ok(Response::new(pb::SyncReportsResponse { results }))
    }

    async fn get_report(
        &self,
        req: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let p = principal(&req)?;
        let id = uuid_field(&req.get_ref().report_id, "report_id")?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let r = reports::get(&mut conn, &p.scope, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("report {id} not found")))?;
        Ok(Response::new(convert::report(r, &self.state.app.pii, &p)))
    }

    async fn list_reports(
        &self,
        req: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let prefix = requested_scope(&p, &r.region_code)?;
        let case_id = optional_uuid(&r.case_id, "case_id")?;
        let (start, end) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
        let f = ReportFilter {
            prefix: prefix.prefix().to_owned(),
            case_id,
            unified_category: (!r.unified_category.is_empty()).then(|| r.unified_category.clone()),
            flag: (!r.flag.is_empty()).then(|| r.flag.clone()),
            start,
            end,
        };
        // A page token is bound to the whole filter it was issued for.
        let (filter, size) = (format!("{f:?}"), r.page_size);
        let page = Page::parse(&self.state, &p, "ListReports", &filter, size, &r.page_token)?;
        let before = page.after_uuid()?;
        let mut conn = self.state.app.pool.get().await.map_err(ApiError::from)?;
        let mut rows = reports::list(&mut conn, &f, before, page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.finish(&self.state, &mut rows, |r| r.report_id.to_string());
        Ok(Response::new(pb::ListReportsResponse {
            reports: rows
                .into_iter()
                .map(|r| convert::report(r, &self.state.app.pii, &p))
                .collect(),
            next_page_token,
        }))
    }

    type DownloadAttachmentStream = super::Chunks<pb::AttachmentChunk>;

    async fn download_attachment(
        &self,
        req: Request<pb::DownloadAttachmentRequest>,
    ) -> Result<Response<Self::DownloadAttachmentStream>, Status> {
        let p = principal(&req)?;
        let pb::DownloadAttachmentRequest { attachment_id } = req.get_ref();
        let sha = attachment_id.trim();
        if sha.len() != 64
            || !sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(
                ApiError::invalid("attachment_id", "64 lowercase hex digits (a SHA-256)").into(),
            );
        }
        let (content_type, bytes) = app::reports::attachment(&self.state.app, &p, sha).await?;
        // The first chunk names the content type, as in UploadAttachment.
        Ok(Response::new(super::chunks(&bytes, |i, data| {
            pb::AttachmentChunk {
                content_type: if i == 0 {
                    content_type.clone()
                } else {
                    String::new()
                },
                data: data.to_vec(),
            }
        })))
    }

    async fn upload_attachment(
        &self,
        req: Request<Streaming<pb::AttachmentChunk>>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let p = principal(&req)?;
        let mut stream = req.into_inner();
        let mut upload: Option<Upload> = None;
        while let Some(chunk) = stream.message().await? {
            let u = match upload.as_mut() {
                Some(u) => u,
                None => upload.insert(
                    Upload::start(&chunk.content_type, self.state.app.attachment_max_bytes)
                        .map_err(|e| ApiError::invalid("content_type", e.to_string()))?,
                ),
            };
            u.push(&chunk.data)
                .map_err(|e| ApiError::invalid("data", e.to_string()))?;
        }
        let upload = upload.ok_or_else(|| ApiError::invalid("data", "empty upload"))?;
        let stored = app::reports::store_attachment(&self.state.app, &p, upload).await?;
        Ok(Response::new(pb::Attachment {
            attachment_id: stored.sha,
            content_type: stored.content_type,
            size_bytes: stored.size_bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> PiiCipher {
        PiiCipher::new(&crate::crypto::SecretKey::generate())
    }

    fn good() -> pb::Report {
        pb::Report {
            client_report_id: Uuid::new_v4().to_string(),
            source: pb::ReportSource::GridApp as i32,
            category_code: "0301".into(),
            title: "路边围墙倒塌".into(),
            location: Some(pb::LatLng {
                lat: 28.83,
                lng: 106.745,
            }),
            occurred_at: Some(convert::timestamp(Utc::now())),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_report_validates() {
        let r = report_input(&good(), "", &cipher()).unwrap();
        assert_eq!(r.title, "路边围墙倒塌");
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = pb::Report {
            client_report_id: "x".into(),
            source: 0,
            category_code: " ".into(),
            title: String::new(),
            location: Some(pb::LatLng {
                lat: 91.0,
                lng: f64::NAN,
            }),
            grid_code: "500110111201".into(),
            occurred_at: Some(convert::timestamp(Utc::now() + chrono::Duration::hours(1))),
            attachments: vec!["ABC".into()],
            ..Default::default()
        };
        let v = report_input(&r, "report.", &cipher()).unwrap_err();
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "report.client_report_id",
                "report.source",
                "report.category_code",
                "report.title",
                "report.location.lat",
                "report.location.lng",
                "report.grid_code",
                "report.occurred_at",
                "report.attachments[0]"
            ]
        );
    }

    #[test]
    fn the_payload_hash_ignores_server_set_fields_only() {
        let a = good();
        let mut b = a.clone();
        b.case_id = "whatever".into();
        b.flags = vec!["X".into()];
        assert_eq!(payload_hash(&a), payload_hash(&b));
        b.title = "另一件事".into();
        assert_ne!(payload_hash(&a), payload_hash(&b));
    }
}
