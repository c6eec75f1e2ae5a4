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

use super::error::ApiError;
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

/// Every message of the contract (and of what it imports), by full name.
struct Index {
    messages: Vec<Msg>,
    by_name: HashMap<String, usize>,
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
        Index { messages, by_name }
    })
}

/// The violations of message `name` encoded as `bytes`, paths prefixed by `at`. `Err` when the
/// bytes are not protobuf at all (prost then names the problem).
fn walk(
    ix: &Index,
    msg: usize,
    mut bytes: &[u8],
    at: &str,
    out: &mut Vec<Violation>,
) -> Result<(), ()> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    while bytes.has_remaining() {
        let key = prost::encoding::decode_varint(&mut bytes).map_err(|_| ())?;
        let number = (key >> 3) as u32;
        let wire = key & 7;
        match wire {
            0 => {
                prost::encoding::decode_varint(&mut bytes).map_err(|_| ())?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if bytes.remaining() < n {
                    return Err(());
                }
                bytes.advance(n);
            }
            2 => {
                let len = prost::encoding::decode_varint(&mut bytes).map_err(|_| ())? as usize;
                if bytes.remaining() < len {
                    return Err(());
                }
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                let Some(field) = ix.messages[msg].fields.get(&number) else {
                    continue;
                };
                let path = if field.repeated {
                    let k = counts.entry(number).or_default();
                    let p = format!("{at}{}[{k}]", field.name);
                    *k += 1;
                    p
                } else {
                    format!("{at}{}", field.name)
                };
                match field.kind {
                    Kind::Text => {
                        if let Some(why) = text_problem(value, field.max) {
                            out.push(Violation::new(path, why));
                        }
                    }
                    Kind::Message(m) if !field.item_list => {
                        walk(ix, m, value, &format!("{path}."), out)?;
                    }
                    _ => {}
                }
            }
            _ => return Err(()),
        }
    }
    Ok(())
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
    fn go(
        ix: &Index,
        msg: usize,
        mut bytes: &[u8],
        at: &str,
        out: &mut Vec<(String, String)>,
    ) -> Option<()> {
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
                    let Some(f) = ix.messages[msg].fields.get(&number) else {
                        continue;
                    };
                    let path = format!("{at}{}", f.name);
                    match f.kind {
                        Kind::Text => {
                            out.push((path, String::from_utf8_lossy(value).into_owned()));
                        }
                        Kind::Message(m) => go(ix, m, value, &format!("{path}."), out)?,
                        Kind::Other => {}
                    }
                }
                _ => return None,
            }
        }
        Some(())
    }
    let ix = index();
    let i = *ix.by_name.get(name)?;
    let mut out = Vec::new();
    go(ix, i, bytes, "", &mut out)?;
    Some(out)
}

/// The violations of a decoded message, paths prefixed by `at` (for the items of a batch).
pub fn check<M: Message + prost::Name>(m: &M, at: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let ix = index();
    if let Some(&i) = ix.by_name.get(&M::full_name()) {
        let _ = walk(ix, i, &m.encode_to_vec(), at, &mut out);
    }
    out
}

/// The edge check of a request's wire bytes.
fn check_wire(name: &str, bytes: &[u8]) -> Result<(), Status> {
    let ix = index();
    let Some(&i) = ix.by_name.get(name) else {
        return Ok(());
    };
    let mut out = Vec::new();
    match walk(ix, i, bytes, "", &mut out) {
        Err(()) => Err(ApiError::invalid("", format!("not a valid {name} message")).into()),
        Ok(()) if out.is_empty() => Ok(()),
        Ok(()) => Err(ApiError::InvalidArgument(out).into()),
    }
}

/// Whether `name` is the request type of some RPC: only requests are checked, so a client of
/// this crate decoding an answer is never refused.
fn is_request(name: &str) -> bool {
    static R: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    R.get_or_init(|| {
        let fds =
            prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap_or_default();
        fds.file
            .iter()
            .flat_map(|f| f.service.iter())
            .flat_map(|s| s.method.iter())
            .map(|m| m.input_type().trim_start_matches('.').to_owned())
            .collect()
    })
    .contains(name)
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
        EdgeDecoder {
            check: is_request(&U::full_name()),
            _pd: PhantomData,
        }
    }
}

/// See [`EdgeCodec`].
#[derive(Debug)]
pub struct EdgeDecoder<U> {
    check: bool,
    _pd: PhantomData<U>,
}

impl<U: Message + prost::Name + Default> Decoder for EdgeDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if self.check {
            let n = buf.remaining();
            if buf.chunk().len() >= n {
                check_wire(&U::full_name(), &buf.chunk()[..n])?;
            } else {
                let bytes = buf.copy_to_bytes(n);
                check_wire(&U::full_name(), &bytes)?;
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
