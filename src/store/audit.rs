//! The append-only, hash-chained audit trail.
//!
//! Design: one chain over all events, `seq` without gaps, sealed after commit. A mutating
//! transaction records its events as pending in its last statement (`audit_record`, migration
//! 12): each event as the canonical text of its content, computed here, which the chain hashes
//! and from which the sealer reads the event's columns back. They commit or roll back with the
//! transaction. A sealer (`audit_seal`, one short transaction under the chain's lock) then
//! numbers the pending events of committed transactions, chains their hashes and moves them
//! into `audit_events`: writers never wait for each other's commits. Each server runs
//! a sealer (`src/sealer.rs`) woken by its own commits; a reader that must see everything
//! committed so far calls [`seal`] first. Each event's hash is SHA-256 over the previous hash and a canonical
//! encoding of its content, so editing, deleting or reordering any event breaks the chain at
//! that point. A trigger refuses UPDATE and DELETE; the chain catches whoever bypasses the
//! trigger.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::schema::audit_events;

/// One audited action, before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Who acted, when it is not the transaction's actor (grouped intake of several callers).
    pub actor: Option<Actor>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub region_code: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub outcome: String,
}

impl NewEvent {
    /// A successful action on an entity.
    pub fn ok(
        action: &str,
        entity_type: &str,
        entity_id: &str,
        region_code: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> NewEvent {
        NewEvent {
            actor: None,
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            region_code: region_code.to_owned(),
            before,
            after,
            outcome: "ok".to_owned(),
        }
    }
}

impl NewEvent {
    /// The same event, done by `actor`.
    pub fn by(self, actor: Actor) -> NewEvent {
        NewEvent {
            actor: Some(actor),
            ..self
        }
    }
}

/// Who acted, for every event of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub sub: String,
    pub roles: Vec<String>,
    pub request_id: String,
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct Event {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub actor_roles: Vec<Option<String>>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub region_code: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub outcome: String,
    pub request_id: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Appends `events` to the chain; call as the last statement of the transaction. They are
/// recorded as pending now, each as the canonical text of its content (see [`tail`]: every
/// field of the event is in it), and sealed (numbered, chained and stored column by column
/// from that text) after the commit: see [`seal`].
#[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
pub async fn append(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    events: Vec<NewEvent>,
) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let tails: Vec<String> = events.iter().map(|e| text(actor, e)).collect();
    RecordEvents { b1: &tails }.execute(conn).await?;
    Ok(())
}

/// What is recorded of an event by `actor` (unless it names its own) until it is sealed: the
/// canonical text of its content (see [`tail`]). For statements that record their events
/// themselves with `audit_record` (the intake's write, see `store::reports`).
pub fn text(actor: &Actor, e: &NewEvent) -> String {
    let who = e.actor.as_ref().unwrap_or(actor);
    tail(
        &who.sub,
        &who.roles,
        &e.action,
        &e.entity_type,
        &e.entity_id,
        &e.region_code,
        e.before.as_ref(),
        e.after.as_ref(),
        &e.outcome,
        &who.request_id,
    )
}

/// Seals the pending events of committed transactions into the chain (all of them, in
/// batches); returns how many. Call outside a transaction: each batch commits on its own.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn seal(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    let mut total = 0i64;
    loop {
        let n: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "audit_seal()",
        ))
        .get_result(conn)
        .await?;
        total += i64::from(n);
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Wakes the sealers of this process after a commit with audit events.
pub fn committed() {
    WAKE.notify_waiters();
}

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Resolves once [`committed`] is next called (register it before sealing, so a commit during
/// the seal wakes the next round).
pub fn woken() -> tokio::sync::futures::Notified<'static> {
    WAKE.notified()
}

/// SHA-256 over the previous hash and the canonical JSON array of the event's content:
/// `[seq, occurred_at (µs), actor, roles, action, entity_type, entity_id, region_code, before,
/// after, outcome, request_id]`.
pub fn hash_event(e: &Event) -> Vec<u8> {
    let tail = tail(
        &e.actor,
        &e.actor_roles,
        &e.action,
        &e.entity_type,
        &e.entity_id,
        &e.region_code,
        e.before.as_ref(),
        e.after.as_ref(),
        &e.outcome,
        &e.request_id,
    );
    let mut h = Sha256::new();
    h.update(&e.prev_hash);
    h.update(format!("[{},{}{tail}", e.seq, e.occurred_at.timestamp_micros()).as_bytes());
    h.finalize().to_vec()
}

/// The canonical text of the content array after its first two elements (seq and time, which
/// the database adds under the chain's lock): `,actor,…,request_id]`. Canonical: compact, and
/// object keys sorted, however the maps were built or read back from jsonb — serde_json's
/// maps are sorted (`preserve_order` is off; a test checks it), so plain serialization is it.
#[allow(clippy::too_many_arguments)]
fn tail<R: serde::Serialize>(
    actor: &str,
    roles: &[R],
    action: &str,
    entity_type: &str,
    entity_id: &str,
    region_code: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    outcome: &str,
    request_id: &str,
) -> String {
    let content = (
        actor,
        roles,
        action,
        entity_type,
        entity_id,
        region_code,
        before,
        after,
        outcome,
        request_id,
    );
    // Serializing strings, numbers and sorted maps cannot fail.
    let mut text = serde_json::to_string(&content).unwrap_or_default();
    // "[x,…]" → ",x,…]"
    text.replace_range(..1, ",");
    text
}

/// The chain's head: its last event's seq and hash.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn head(conn: &mut AsyncPgConnection) -> QueryResult<Option<(i64, Vec<u8>)>> {
    audit_events::table
        .order(audit_events::seq.desc())
        .select((audit_events::seq, audit_events::hash))
        .first(conn)
        .await
        .optional()
}

/// The hash of event `seq`, if it is there.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn hash_at(conn: &mut AsyncPgConnection, seq: i64) -> QueryResult<Option<Vec<u8>>> {
    audit_events::table
        .find(seq)
        .select(audit_events::hash)
        .first(conn)
        .await
        .optional()
}

/// Result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events_checked: i64,
    /// First broken link: its seq and why.
    pub broken: Option<(i64, String)>,
    pub head_hash: Vec<u8>,
}

/// Walks the whole chain in seq order, recomputing every hash.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(conn: &mut AsyncPgConnection) -> QueryResult<ChainReport> {
    let mut expected_seq = 1i64;
    let mut prev = vec![0u8; 32];
    let mut checked = 0i64;
    loop {
        let batch: Vec<Event> = audit_events::table
            .filter(audit_events::seq.ge(expected_seq))
            .order(audit_events::seq)
            .limit(5000)
            .select(Event::as_select())
            .load(conn)
            .await?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if e.seq != expected_seq {
                let why = format!("event {expected_seq} is missing (next is {})", e.seq);
                return Ok(ChainReport {
                    events_checked: checked,
                    broken: Some((expected_seq, why)),
                    head_hash: prev,
                });
            }
            if e.prev_hash != prev {
                let why = "link to the previous event does not match (an event before it was removed or replaced)".to_owned();
                return Ok(ChainReport {
                    events_checked: checked,
                    broken: Some((e.seq, why)),
                    head_hash: prev,
                });
            }
            if hash_event(&e) != e.hash {
                let why = "content does not match its hash (the event was altered)".to_owned();
                return Ok(ChainReport {
                    events_checked: checked,
                    broken: Some((e.seq, why)),
                    head_hash: prev,
                });
            }
            checked += 1;
            expected_seq += 1;
            prev = e.hash;
        }
    }
    Ok(ChainReport {
        events_checked: checked,
        broken: None,
        head_hash: prev,
    })
}

/// Filter for listing events; `prefix` is the region scope.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub prefix: String,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Events matching the filter after `after_seq`, oldest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &EventFilter,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let mut q = audit_events::table
        .filter(audit_events::region_code.like(format!("{}%", f.prefix)))
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq)
        .limit(limit)
        .select(Event::as_select())
        .into_boxed();
    if let Some(t) = &f.entity_type {
        q = q.filter(audit_events::entity_type.eq(t.clone()));
    }
    if let Some(id) = &f.entity_id {
        q = q.filter(audit_events::entity_id.eq(id.clone()));
    }
    if let Some(s) = f.start {
        q = q.filter(audit_events::occurred_at.ge(s));
    }
    if let Some(e) = f.end {
        q = q.filter(audit_events::occurred_at.lt(e));
    }
    q.load(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SubsecRound;

    fn event() -> Event {
        Event {
            seq: 1,
            occurred_at: Utc::now().trunc_subsecs(6),
            actor: "op1".into(),
            actor_roles: vec![Some("admin".into())],
            action: "region.import".into(),
            entity_type: "region".into(),
            entity_id: "500110".into(),
            region_code: "500110".into(),
            before: None,
            after: Some(serde_json::json!({"b": 1, "a": [1, 2.5, "x"]})),
            outcome: "ok".into(),
            request_id: String::new(),
            prev_hash: vec![0; 32],
            hash: vec![],
        }
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let base = event();
        let h = hash_event(&base);
        let mut e = base.clone();
        e.actor = "op2".into();
        assert_ne!(hash_event(&e), h);
        let mut e = base.clone();
        e.after = Some(serde_json::json!({"b": 2, "a": [1, 2.5, "x"]}));
        assert_ne!(hash_event(&e), h);
        let mut e = base.clone();
        e.prev_hash = vec![1; 32];
        assert_ne!(hash_event(&e), h);
    }

    /// The canonical encoding as first written (keys sorted by hand), kept to check that
    /// `tail` still produces the very text that older events were hashed over.
    fn reference_canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    reference_canonical(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference_canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    #[test]
    fn tail_is_the_canonical_text_of_the_first_encoding() {
        let after: Value = serde_json::from_str(
            r#"{"zeta":{"b":[1,-2.5,1e-7,12345678901234567890],"a":null},"Alpha":"引号\"\\\n\u0001","ä":true,"":{}}"#,
        )
        .unwrap();
        let before = serde_json::json!({"status": "REPORTED", "flags": ["OVERDUE"], "version": 3});
        let roles = vec![
            Some("town_operator".to_owned()),
            None,
            Some("pii_reader".to_owned()),
        ];
        let got = tail(
            "op\"1",
            &roles,
            "case.dispatch",
            "case",
            "c-1",
            "500110",
            Some(&before),
            Some(&after),
            "ok",
            "r-1",
        );
        let mut want = String::new();
        reference_canonical(
            &Value::Array(vec![
                "op\"1".into(),
                Value::from(roles.clone()),
                "case.dispatch".into(),
                "case".into(),
                "c-1".into(),
                "500110".into(),
                before.clone(),
                after.clone(),
                "ok".into(),
                "r-1".into(),
            ]),
            &mut want,
        );
        assert_eq!(got, format!(",{}", &want[1..]));
        let none = tail::<String>("a", &[], "x", "t", "i", "r", None, None, "ok", "");
        assert_eq!(none, r#","a",[],"x","t","i","r",null,null,"ok",""]"#);
    }

    #[test]
    fn json_maps_serialize_with_sorted_keys() {
        // If serde_json's `preserve_order` were switched on somewhere in the dependency tree,
        // maps would keep insertion order and `tail` would no longer be canonical.
        let mut m = serde_json::Map::new();
        m.insert("b".into(), Value::from(1));
        m.insert("a".into(), Value::from(2));
        assert_eq!(Value::Object(m).to_string(), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn key_order_does_not_matter() {
        let mut a = event();
        let mut b = event();
        b.occurred_at = a.occurred_at;
        a.after = Some(serde_json::from_str(r#"{"a":1,"b":{"y":2,"x":3}}"#).unwrap());
        b.after = Some(serde_json::from_str(r#"{"b":{"x":3,"y":2},"a":1}"#).unwrap());
        assert_eq!(hash_event(&a), hash_event(&b));
    }
}

// One transaction's events, each as its canonical text (see `audit_record`, migration 12).
crate::prepared!(struct RecordEvents = "SELECT audit_record($1)" {
    b1: B1 => diesel::sql_types::Array<diesel::sql_types::Text>,
});
