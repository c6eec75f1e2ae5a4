-- A shorter serialized section for every audited transaction, fewer serialized commits, and
-- the 12345 work-order path in fewer round trips.

-- The audit chain is appended at commit. `audit_append` (the last statement of an audited
-- transaction) only stages the transaction's events, one row of arrays per call, in an
-- unlogged table (the staged row lives only inside its transaction, so it needs no WAL). A
-- deferred constraint trigger on that row runs during COMMIT: it takes the chain's lock, reads
-- the head (a fresh snapshot: it sees what the previous holder committed), numbers and times
-- the events, chains their hashes, inserts them and removes the staged row. The lock is held
-- from there until the commit is durable and visible, so the chain still follows commit order
-- without gaps, but no round trip to the application happens while it is held (before: the
-- head, the insert and the COMMIT were three). The hash is the one `store::audit::hash_event`
-- defines: SHA-256 over the previous hash and the canonical JSON array [seq, occurred_at in
-- µs, actor, roles, action, entity type, entity id, region, before, after, outcome, request
-- id]; the caller sends the array's canonical text after its first two elements (`tails`),
-- the database adds the two it alone knows. Migration 3's `audit_chain_head` is kept for
-- older binaries.
CREATE UNLOGGED TABLE audit_staged (
    id bigserial PRIMARY KEY,
    actors text[] NOT NULL,
    roles text[] NOT NULL,
    actions text[] NOT NULL,
    entity_types text[] NOT NULL,
    entity_ids text[] NOT NULL,
    regions text[] NOT NULL,
    befores jsonb[] NOT NULL,
    afters jsonb[] NOT NULL,
    outcomes text[] NOT NULL,
    request_ids text[] NOT NULL,
    tails text[] NOT NULL
);

CREATE FUNCTION audit_append(actors text[], roles text[], actions text[], entity_types text[],
                             entity_ids text[], regions text[], befores jsonb[], afters jsonb[],
                             outcomes text[], request_ids text[], tails text[])
RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_staged (actors, roles, actions, entity_types, entity_ids, regions, befores,
                              afters, outcomes, request_ids, tails)
    SELECT actors, roles, actions, entity_types, entity_ids, regions, befores, afters, outcomes,
           request_ids, tails
     WHERE coalesce(cardinality(tails), 0) > 0
$$;

CREATE FUNCTION audit_chain_staged() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n integer := cardinality(NEW.tails);
    head bigint;
    prev bytea;
    at timestamptz;
    micros text;
    seqs bigint[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(7270002);
    SELECT a.seq, a.hash INTO head, prev FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, decode(repeat('00', 32), 'hex'));
    at := clock_timestamp();
    micros := (extract(epoch FROM at) * 1000000)::bigint::text;
    FOR i IN 1..n LOOP
        seqs[i] := head + i;
        prevs[i] := prev;
        prev := sha256(prev || convert_to('[' || (head + i)::text || ',' || micros || NEW.tails[i], 'UTF8'));
        hashes[i] := prev;
    END LOOP;
    INSERT INTO audit_events (seq, occurred_at, actor, actor_roles, action, entity_type, entity_id,
                              region_code, before, after, outcome, request_id, prev_hash, hash)
    SELECT t.seq, at, t.actor, array_remove(string_to_array(t.roles, ','), ''), t.action, t.et,
           t.eid, t.region, t.b, t.a, t.outcome, t.rid, t.ph, t.h
      FROM unnest(seqs, NEW.actors, NEW.roles, NEW.actions, NEW.entity_types, NEW.entity_ids,
                  NEW.regions, NEW.befores, NEW.afters, NEW.outcomes, NEW.request_ids, prevs, hashes)
           AS t(seq, actor, roles, action, et, eid, region, b, a, outcome, rid, ph, h);
    DELETE FROM audit_staged WHERE id = NEW.id;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER audit_staged_chain AFTER INSERT ON audit_staged
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_chain_staged();

-- Takes a work order's advisory lock (so two first pushes of one order cannot both insert),
-- then reads the order, locked for update, in one round trip. In a VOLATILE function the
-- read takes a new snapshot after the lock is granted, so it sees an order committed by
-- whoever held the lock before.
CREATE FUNCTION hotline_order_locked(no text) RETURNS SETOF hotline_orders
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7270011, hashtext(no));
    RETURN QUERY SELECT * FROM hotline_orders WHERE order_no = no FOR UPDATE;
END $$;

-- The same for all work orders of a group commit in one round trip: takes their locks in key
-- order (two groups cannot deadlock), then returns each existing order, locked for update,
-- and for each order not yet received a request serial reserved for it (`serial`; the other
-- columns are then null).
CREATE FUNCTION hotline_orders_locked(nos text[])
RETURNS TABLE (order_no text, sr_id uuid, version integer, payload_hash bytea, report_id uuid,
               lat double precision, lng double precision, received_at timestamptz,
               updated_at timestamptz, serial bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    k text;
BEGIN
    FOR k IN SELECT DISTINCT x FROM unnest(nos) x ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(7270011, hashtext(k));
    END LOOP;
    RETURN QUERY
    WITH found AS (
        SELECT o.order_no, o.sr_id, o.version, o.payload_hash, o.report_id, o.lat, o.lng,
               o.received_at, o.updated_at
          FROM hotline_orders o
         WHERE o.order_no = ANY (nos)
           FOR UPDATE
    )
    SELECT f.*, NULL::bigint FROM found f
    UNION ALL
    SELECT x, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, nextval('service_request_serial')
      FROM (SELECT DISTINCT x FROM unnest(nos) x) d
     WHERE NOT EXISTS (SELECT 1 FROM found f WHERE f.order_no = d.x);
END $$;

-- Wake the live feed only for what it broadcasts (cases, reports, alerts). A transaction that
-- notifies takes a global lock at commit, so every notifying transaction commits one at a
-- time; work orders, requests, mediation and catalog changes no longer do. The feed still
-- moves its cursor to the chain's head whenever it reads.
DROP TRIGGER audit_events_notify ON audit_events;
CREATE OR REPLACE FUNCTION notify_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_events WHERE entity_type IN ('case', 'report', 'alert')) THEN
        PERFORM pg_notify('gridhub_feed', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_notify AFTER INSERT ON audit_events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION notify_feed();
