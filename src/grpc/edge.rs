//! The edge check every request message passes before any handler sees it: each string field,
//! at any depth, of every RPC's request is valid UTF-8, holds no NUL (U+0000, which PostgreSQL
//! cannot store) and keeps within its length bound. It reads the protobuf wire bytes against
//! the compiled descriptor set, so a new field or RPC is covered without code; the generated
//! services decode with [`EdgeCodec`], which runs it before prost decodes.
//!
//! The bounds (in characters): [`DEFAULT_MAX_CHARS`] for every string field unless
//! [`max_chars`] names another; `proto/gridhub/v1/common.proto` states the rule and each
//! field with a longer bound says so in its comment.
//!
//! The items of an offline batch (`SyncReportsRequest.reports`) are not checked here: one bad
//! report must fail alone, so the intake checks each with [`check`] and answers for it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::OnceLock;

use prost::Message;
use prost::bytes::Buf;
use prost_types::field_descriptor_proto::{Label, Type};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::app::error::ApiError;
use crate::domain::Violation;

/// The bound of a string field with no bound of its own.
pub const DEFAULT_MAX_CHARS: usize = 256;

/// Free text people write: descriptions, comments, replies, agreements.
const LONG_TEXT: usize = 5000;

/// The bound of string field `field` of message `message` (full name without the leading dot).
pub fn max_chars(message: &str, field: &str) -> usize {
    match (message, field) {
        // A whole 权责清单 CSV in one request.
        ("gridhub.v1.ImportCatalogRequest", "csv") => 8 << 20,
        (_, "title" | "address" | "place" | "legal_basis") => 200,
        (_, "name") => 100,
        (
            _,
            "description" | "comment" | "content" | "summary" | "text" | "reason" | "note"
            | "referral_note" | "reply" | "outcome",
        ) => LONG_TEXT,
        (_, "page_token" | "cursor" | "resume_token") => 1024,
        _ => DEFAULT_MAX_CHARS,
    }
}

/// Repeated message fields whose items are checked one by one by their handler (see the
/// module docs).
fn item_list(message: &str, field: &str) -> bool {
    matches!(
        (message, field),
        ("gridhub.v1.SyncReportsRequest", "reports")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Message(usize),
    Other,
}

#[derive(Debug)]
struct Field {
    name: String,
    kind: Kind,
    repeated: bool,
    max: usize,
    item_list: bool,
}

#[derive(Debug, Default)]
struct Msg {
    fields: HashMap<u32, Field>,
}

/// Every message of the contract (and of what it imports), by full name, and which of them
/// are some RPC's request.
struct Index {
    messages: Vec<Msg>,
    by_name: HashMap<String, usize>,
    requests: std::collections::HashSet<usize>,
}

fn index() -> &'static Index {
    static I: OnceLock<Index> = OnceLock::new();
    I.get_or_init(|| {
        let fds =
            prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap_or_default();
        let mut protos = Vec::new();
        fn collect<'a>(
            prefix: &str,
            m: &'a prost_types::DescriptorProto,
            out: &mut Vec<(String, &'a prost_types::DescriptorProto)>,
        ) {
            let name = format!("{prefix}.{}", m.name());
            for n in &m.nested_type {
                collect(&name, n, out);
            }
            out.push((name, m));
        }
        for f in &fds.file {
            let prefix = f.package().to_owned();
            for m in &f.message_type {
                collect(&prefix, m, &mut protos);
            }
        }
        let by_name: HashMap<String, usize> = protos
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let messages = protos
            .iter()
            .map(|(mname, m)| Msg {
                fields: m
                    .field
                    .iter()
                    .map(|f| {
                        let kind = match f.r#type() {
                            Type::String => Kind::Text,
                            Type::Message => by_name
                                .get(f.type_name().trim_start_matches('.'))
                                .map(|i| Kind::Message(*i))
                                .unwrap_or(Kind::Other),
                            _ => Kind::Other,
                        };
                        (
                            f.number() as u32,
                            Field {
                                name: f.name().to_owned(),
                                kind,
                                repeated: f.label() == Label::Repeated,
                                max: max_chars(mname, f.name()),
                                item_list: item_list(mname, f.name()),
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        let requests = fds
            .file
            .iter()
            .flat_map(|f| f.service.iter())
            .flat_map(|s| s.method.iter())
            .filter_map(|m| by_name.get(m.input_type().trim_start_matches('.')).copied())
            .collect();
        Index {
            messages,
            by_name,
            requests,
        }
    })
}

/// Where a visitor is: the fields from the message walked down to this one, with each repeated
/// field's item number. Formatted only when a path is wanted.
type Trail<'a> = Vec<(&'a str, Option<usize>)>;

fn path(at: &str, trail: &Trail<'_>) -> String {
    let mut p = at.to_owned();
    for (i, (name, k)) in trail.iter().enumerate() {
        if i > 0 {
            p.push('.');
        }
        p.push_str(name);
        if let Some(k) = k {
            p.push_str(&format!("[{k}]"));
        }
    }
    p
}

/// Walks message `msg` encoded as `bytes`, calling `text` for every string field at any depth
/// (with the trail to it); `skip_items` leaves batch items (see [`item_list`]) to their
/// handler. `None` when the bytes are not protobuf at all (prost then names the problem).
fn visit<'a>(
    ix: &'a Index,
    msg: usize,
    mut bytes: &[u8],
    skip_items: bool,
    trail: &mut Trail<'a>,
    text: &mut dyn FnMut(&Field, &Trail<'a>, &[u8]),
) -> Option<()> {
    // Items seen so far of each repeated field, for their paths.
    let mut counts: Vec<(u32, usize)> = Vec::new();
    while bytes.has_remaining() {
        let key = prost::encoding::decode_varint(&mut bytes).ok()?;
        let (number, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => {
                prost::encoding::decode_varint(&mut bytes).ok()?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                (bytes.remaining() >= n).then_some(())?;
                bytes.advance(n);
            }
            2 => {
                let len = prost::encoding::decode_varint(&mut bytes).ok()? as usize;
                (bytes.remaining() >= len).then_some(())?;
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                let Some(field) = ix.messages[msg].fields.get(&number) else {
                    continue;
                };
                let item = if field.repeated {
                    let k = match counts.iter().position(|(n, _)| *n == number) {
                        Some(k) => k,
                        None => {
                            counts.push((number, 0));
                            counts.len() - 1
                        }
                    };
                    counts[k].1 += 1;
                    Some(counts[k].1 - 1)
                } else {
                    None
                };
                match field.kind {
                    Kind::Text => {
                        trail.push((&field.name, item));
                        text(field, trail, value);
                        trail.pop();
                    }
                    Kind::Message(m) if !(skip_items && field.item_list) => {
                        trail.push((&field.name, item));
                        let ok = visit(ix, m, value, skip_items, trail, text);
                        trail.pop();
                        ok?;
                    }
                    _ => {}
                }
            }
            _ => return None,
        }
    }
    Some(())
}

/// The violations of message `msg` encoded as `bytes`, paths prefixed by `at`; `None` when
/// the bytes are not protobuf.
fn violations(ix: &Index, msg: usize, bytes: &[u8], at: &str) -> Option<Vec<Violation>> {
    let mut out = Vec::new();
    visit(
        ix,
        msg,
        bytes,
        true,
        &mut Vec::new(),
        &mut |field, trail, value| {
            if let Some(why) = text_problem(value, field.max) {
                out.push(Violation::new(path(at, trail), why));
            }
        },
    )?;
    Some(out)
}

/// What is wrong with a string field's bytes, if anything.
fn text_problem(value: &[u8], max: usize) -> Option<String> {
    let Ok(s) = std::str::from_utf8(value) else {
        return Some("is not valid UTF-8".into());
    };
    if s.contains('\0') {
        return Some("must not contain NUL (U+0000)".into());
    }
    // Cheap before counting: a string of at most `max` bytes has at most `max` characters.
    if s.len() > max && s.chars().count() > max {
        return Some(format!("at most {max} characters"));
    }
    None
}

/// Every string field of message `name` encoded as `bytes`, at any depth, as (field path,
/// value); `None` when the name is unknown or the bytes are not protobuf. For tools and
/// tests that look into answers without their types (the access matrix scans every answer
/// for regions outside the caller's and for personal data in clear).
pub fn string_fields(name: &str, bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let ix = index();
    let mut out = Vec::new();
    visit(
        ix,
        *ix.by_name.get(name)?,
        bytes,
        false,
        &mut Vec::new(),
        &mut |_, trail, value| {
            out.push((path("", trail), String::from_utf8_lossy(value).into_owned()));
        },
    )?;
    Some(out)
}

/// The violations of a decoded message, paths prefixed by `at` (for the items of a batch).
pub fn check<M: Message + prost::Name>(m: &M, at: &str) -> Vec<Violation> {
    let ix = index();
    ix.by_name
        .get(&M::full_name())
        .and_then(|&i| violations(ix, i, &m.encode_to_vec(), at))
        .unwrap_or_default()
}

/// The edge check of a request's wire bytes, message `msg` of the index.
fn check_wire(msg: usize, name: &str, bytes: &[u8]) -> Result<(), Status> {
    match violations(index(), msg, bytes, "") {
        None => Err(ApiError::invalid("", format!("not a valid {name} message")).into()),
        Some(v) if v.is_empty() => Ok(()),
        Some(v) => Err(ApiError::InvalidArgument(v).into()),
    }
}

/// The codec of the generated services and clients: prost's, with the edge check before a
/// request is decoded.
#[derive(Debug, Clone)]
pub struct EdgeCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for EdgeCodec<T, U> {
    fn default() -> Self {
        EdgeCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for EdgeCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + prost::Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = EdgeDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        let ix = index();
        EdgeDecoder {
            request: ix
                .by_name
                .get(&U::full_name())
                .copied()
                .filter(|i| ix.requests.contains(i)),
            _pd: PhantomData,
        }
    }
}

/// See [`EdgeCodec`].
#[derive(Debug)]
pub struct EdgeDecoder<U> {
    /// The message's place in the index when it is some RPC's request (only requests are
    /// checked, so a client of this crate decoding an answer is never refused).
    request: Option<usize>,
    _pd: PhantomData<U>,
}

impl<U: Message + prost::Name + Default> Decoder for EdgeDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if let Some(msg) = self.request {
            let n = buf.remaining();
            if buf.chunk().len() >= n {
                check_wire(msg, U::NAME, &buf.chunk()[..n])?;
            } else {
                let bytes = buf.copy_to_bytes(n);
                check_wire(msg, U::NAME, &bytes)?;
                return U::decode(bytes).map(Some).map_err(|e| {
                    ApiError::invalid("", format!("not a valid {}: {e}", U::full_name())).into()
                });
            }
        }
        U::decode(buf).map(Some).map_err(|e| {
            ApiError::invalid("", format!("not a valid {}: {e}", U::full_name())).into()
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb;

    fn check_wire(name: &str, bytes: &[u8]) -> Result<(), Status> {
        super::check_wire(index().by_name[name], name, bytes)
    }

    fn is_request(name: &str) -> bool {
        index().requests.contains(&index().by_name[name])
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|x| x.field.as_str()).collect()
    }

    #[test]
    fn nul_and_length_are_found_at_any_depth() {
        let r = pb::SubmitReportRequest {
            report: Some(pb::Report {
                title: "坏\u{0}".into(),
                description: "x".repeat(LONG_TEXT + 1),
                attachments: vec!["ok".into(), "a\u{0}".into()],
                ..Default::default()
            }),
        };
        let v = check(&r, "");
        assert_eq!(
            fields(&v),
            [
                "report.title",
                "report.description",
                "report.attachments[1]"
            ]
        );
        let s = check_wire("gridhub.v1.SubmitReportRequest", &r.encode_to_vec()).unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn bounds_count_characters_not_bytes() {
        let name = |s: String| pb::UpsertDepartmentRequest {
            department: Some(pb::Department {
                name: s,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(check(&name("镇".repeat(100)), "").is_empty());
        assert_eq!(
            fields(&check(&name("镇".repeat(101)), "")),
            ["department.name"]
        );
    }

    #[test]
    fn invalid_utf8_and_garbage_are_invalid_arguments() {
        // Field 1 (worker_id of Worker is not at the top; use ListWorkersRequest's region_code).
        let mut bytes = Vec::new();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(3, &mut bytes);
        bytes.extend_from_slice(&[0xed, 0xa0, 0x80]); // a lone surrogate, CESU-8 style
        let s = check_wire("gridhub.v1.ListWorkersRequest", &bytes).unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s = check_wire("gridhub.v1.ListWorkersRequest", &[0x0a, 0x7f]).unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn batch_items_are_left_to_their_handler() {
        let r = pb::SyncReportsRequest {
            reports: vec![pb::Report {
                title: "坏\u{0}".into(),
                ..Default::default()
            }],
        };
        assert!(check(&r, "").is_empty());
        assert_eq!(fields(&check(&r.reports[0], "")), ["title"]);
    }

    #[test]
    fn only_requests_are_checked() {
        assert!(is_request("gridhub.v1.SubmitReportRequest"));
        assert!(is_request("gridhub.v1.RegionRecord"));
        assert!(!is_request("gridhub.v1.SubmitReportResult"));
    }
}
