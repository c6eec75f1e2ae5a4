//! The append-only, hash-chained audit trail.
//!
//! Design: one chain over all events, `seq` without gaps. A mutating transaction collects its
//! events and appends them as its last statement, under a transaction-scoped advisory lock:
//! concurrent writers serialize only for that short append-and-commit, not for their whole
//! work. Each event's hash is SHA-256 over the previous hash and a canonical encoding of its
//! content, so editing, deleting or reordering any event breaks the chain at that point.
//! A trigger refuses UPDATE and DELETE; the chain catches whoever bypasses the trigger.

use chrono::{DateTime, SubsecRound, Utc};
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

/// Appends `events` to the chain; call as the last statement of the transaction.
pub async fn append(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    events: Vec<NewEvent>,
) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Lock the chain and read its head in one round trip (see migration 3).
    let head: Option<(i64, Vec<u8>)> = ChainHead {}
        .load::<Head>(conn)
        .await?
        .into_iter()
        .next()
        .map(|h| (h.head_seq, h.head_hash));
    let (mut seq, mut prev) = head.unwrap_or((0, vec![0u8; 32]));
    // Postgres keeps microseconds; hash what will be read back.
    let now = Utc::now().trunc_subsecs(6);
    let rows: Vec<Event> = events
        .into_iter()
        .map(|e| {
            seq += 1;
            let who = e.actor.as_ref().unwrap_or(actor);
            let mut ev = Event {
                seq,
                occurred_at: now,
                actor: who.sub.clone(),
                actor_roles: who.roles.iter().cloned().map(Some).collect(),
                action: e.action,
                entity_type: e.entity_type,
                entity_id: e.entity_id,
                region_code: e.region_code,
                before: e.before,
                after: e.after,
                outcome: e.outcome,
                request_id: who.request_id.clone(),
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            ev.hash = hash_event(&ev);
            prev = ev.hash.clone();
            ev
        })
        .collect();
    // One prepared statement, one array per column, whatever the number of events.
    InsertEvents {
        b1: rows.iter().map(|e| e.seq).collect::<Vec<_>>(),
        b2: rows.iter().map(|e| e.occurred_at).collect::<Vec<_>>(),
        b3: rows.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        b4: rows
            .iter()
            .map(|e| {
                e.actor_roles
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>(),
        b5: rows.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        b6: rows
            .iter()
            .map(|e| e.entity_type.as_str())
            .collect::<Vec<_>>(),
        b7: rows
            .iter()
            .map(|e| e.entity_id.as_str())
            .collect::<Vec<_>>(),
        b8: rows
            .iter()
            .map(|e| e.region_code.as_str())
            .collect::<Vec<_>>(),
        b9: rows.iter().map(|e| e.before.as_ref()).collect::<Vec<_>>(),
        b10: rows.iter().map(|e| e.after.as_ref()).collect::<Vec<_>>(),
        b11: rows.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(),
        b12: rows
            .iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        b13: rows
            .iter()
            .map(|e| e.prev_hash.as_slice())
            .collect::<Vec<_>>(),
        b14: rows.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>(),
    }
    .execute(conn)
    .await?;
    Ok(())
}

/// SHA-256 over the previous hash and the canonical content of the event.
pub fn hash_event(e: &Event) -> Vec<u8> {
    let content = Value::Array(vec![
        Value::from(e.seq),
        Value::from(e.occurred_at.timestamp_micros()),
        Value::from(e.actor.as_str()),
        Value::from(
            e.actor_roles
                .iter()
                .map(|r| Value::from(r.clone()))
                .collect::<Vec<_>>(),
        ),
        Value::from(e.action.as_str()),
        Value::from(e.entity_type.as_str()),
        Value::from(e.entity_id.as_str()),
        Value::from(e.region_code.as_str()),
        e.before.clone().unwrap_or(Value::Null),
        e.after.clone().unwrap_or(Value::Null),
        Value::from(e.outcome.as_str()),
        Value::from(e.request_id.as_str()),
    ]);
    let mut canonical = String::new();
    canonical_json(&content, &mut canonical);
    let mut h = Sha256::new();
    h.update(&e.prev_hash);
    h.update(canonical.as_bytes());
    h.finalize().to_vec()
}

/// JSON with object keys sorted, independent of how maps were built or read back from jsonb.
fn canonical_json(v: &Value, out: &mut String) {
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
                canonical_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
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

// Takes the advisory lock that serializes appends, then reads the head.
crate::prepared!(struct ChainHead = "SELECT head_seq, head_hash FROM audit_chain_head()" {});

#[derive(QueryableByName)]
struct Head {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    head_seq: i64,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    head_hash: Vec<u8>,
}
crate::prepared!(struct InsertEvents = "INSERT INTO audit_events (seq, occurred_at, actor, actor_roles, action, entity_type, entity_id, region_code,
                                       before, after, outcome, request_id, prev_hash, hash)
     SELECT seq, at, actor, array_remove(string_to_array(roles, ','), ''), action, et, eid, region, b, a, outcome, rid, ph, h
       FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                   $9::jsonb[], $10::jsonb[], $11::text[], $12::text[], $13::bytea[], $14::bytea[])
            AS t(seq, at, actor, roles, action, et, eid, region, b, a, outcome, rid, ph, h)" {
    b1: B1 => diesel::sql_types::Array<diesel::sql_types::BigInt>,
    b2: B2 => diesel::sql_types::Array<diesel::sql_types::Timestamptz>,
    b3: B3 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b4: B4 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b5: B5 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b6: B6 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b7: B7 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b8: B8 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b9: B9 => diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Jsonb>>,
    b10: B10 => diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Jsonb>>,
    b11: B11 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b12: B12 => diesel::sql_types::Array<diesel::sql_types::Text>,
    b13: B13 => diesel::sql_types::Array<diesel::sql_types::Bytea>,
    b14: B14 => diesel::sql_types::Array<diesel::sql_types::Bytea>,
});
