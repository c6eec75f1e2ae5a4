-- Audited transactions no longer commit one at a time, fewer serialized commits for the live
-- feed, and the 12345 work-order path in fewer round trips.

-- The audit chain is sealed after commit. `audit_append` (the last statement of an audited
-- transaction) only records the transaction's events as pending, one row of arrays per call;
-- the row commits or rolls back with the transaction, durably. `audit_seal` then takes the
-- chain's lock, reads the head (a fresh snapshot in a VOLATILE function: it sees what the
-- previous sealer committed), numbers the pending events of committed transactions in the
-- order they were recorded, chains their hashes, moves them into `audit_events` and commits.
-- Sealing is one short transaction for many writers' events, so writers no longer commit one
-- at a time behind the chain's lock (before: every audited commit, fsync included, held it).
-- The chain still has no gaps and `seq` still follows commit order (of the sealing
-- transactions), so readers by `seq` (the live feed, PullChanges, the 12345 outbox) keep their
-- cursors. Each server runs a sealer woken by its own commits (`store::audit::Sealer`), and
-- readers that must see everything committed so far seal first. The hash is the one
-- `store::audit::hash_event` defines: SHA-256 over the previous hash and the canonical JSON
-- array [seq, occurred_at in µs, actor, roles, action, entity type, entity id, region, before,
-- after, outcome, request id]; the writer sends the array's canonical text after its first
-- two elements (`tails`), the sealer adds the two it alone knows (occurred_at is the time the
-- events were recorded). Migration 3's `audit_chain_head` is kept for older binaries.
CREATE TABLE audit_pending (
    id bigserial PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
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
-- A queue: rows live for milliseconds, so vacuum it often.
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_cost_delay = 0);

CREATE FUNCTION audit_append(actors text[], roles text[], actions text[], entity_types text[],
                             entity_ids text[], regions text[], befores jsonb[], afters jsonb[],
                             outcomes text[], request_ids text[], tails text[])
RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_pending (actors, roles, actions, entity_types, entity_ids, regions, befores,
                               afters, outcomes, request_ids, tails)
    SELECT actors, roles, actions, entity_types, entity_ids, regions, befores, afters, outcomes,
           request_ids, tails
     WHERE coalesce(cardinality(tails), 0) > 0
$$;

-- Seals pending rows in order, up to `max_rows` rows or, after the first row, `max_events`
-- events; returns the number of events sealed. Each row's events are inserted by their own
-- statement (arrays are not concatenated across rows: that copied them again for every row).
CREATE FUNCTION audit_seal(max_rows integer DEFAULT 1000, max_events integer DEFAULT 5000)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint;
    prev bytea;
    r audit_pending;
    ids bigint[] := '{}';
    n integer := 0;
    seqs bigint[];
    prevs bytea[];
    hashes bytea[];
    tails text[];
    micros text;
BEGIN
    -- Nothing to do: no lock, no write.
    IF NOT EXISTS (SELECT 1 FROM audit_pending p ORDER BY p.id LIMIT 1) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7270002);
    -- The seal need not wait for its own fsync: what it moves is already durable as pending
    -- rows, and a seal lost in a crash (its inserts and deletes together) is done again, the
    -- same rows in the same order giving the same numbers and hashes. So writers' commits do
    -- not queue behind the sealer's.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT a.seq, a.hash INTO head, prev FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, decode(repeat('00', 32), 'hex'));
    FOR r IN SELECT * FROM audit_pending p ORDER BY p.id LIMIT max_rows LOOP
        EXIT WHEN n >= max_events;
        micros := (extract(epoch FROM r.recorded_at) * 1000000)::bigint::text;
        -- A local copy is detoasted once; `r.tails[i]` would detoast the whole array per event.
        tails := r.tails;
        seqs := '{}';
        prevs := '{}';
        hashes := '{}';
        FOR i IN 1..cardinality(tails) LOOP
            n := n + 1;
            seqs[i] := head + n;
            prevs[i] := prev;
            prev := sha256(prev || convert_to('[' || (head + n)::text || ',' || micros || tails[i], 'UTF8'));
            hashes[i] := prev;
        END LOOP;
        INSERT INTO audit_events (seq, occurred_at, actor, actor_roles, action, entity_type, entity_id,
                                  region_code, before, after, outcome, request_id, prev_hash, hash)
        SELECT t.seq, r.recorded_at, t.actor, array_remove(string_to_array(t.roles, ','), ''),
               t.action, t.et, t.eid, t.region, t.b, t.a, t.outcome, t.rid, t.ph, t.h
          FROM unnest(seqs, r.actors, r.roles, r.actions, r.entity_types, r.entity_ids, r.regions,
                      r.befores, r.afters, r.outcomes, r.request_ids, prevs, hashes)
               AS t(seq, actor, roles, action, et, eid, region, b, a, outcome, rid, ph, h);
        ids := ids || r.id;
    END LOOP;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM audit_pending WHERE id = ANY (ids);
    RETURN n;
END $$;

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
    keys text[];
    o hotline_orders;
BEGIN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO keys FROM unnest(nos) x;
    FOREACH k IN ARRAY coalesce(keys, '{}') LOOP
        PERFORM pg_advisory_xact_lock(7270011, hashtext(k));
    END LOOP;
    -- After all locks: each read takes a fresh snapshot and sees what earlier holders committed.
    FOREACH k IN ARRAY coalesce(keys, '{}') LOOP
        SELECT * INTO o FROM hotline_orders h WHERE h.order_no = k FOR UPDATE;
        IF FOUND THEN
            RETURN QUERY SELECT o.order_no, o.sr_id, o.version, o.payload_hash, o.report_id, o.lat,
                                o.lng, o.received_at, o.updated_at, NULL::bigint;
        ELSE
            RETURN QUERY SELECT k, NULL::uuid, NULL::integer, NULL::bytea, NULL::uuid,
                                NULL::double precision, NULL::double precision, NULL::timestamptz,
                                NULL::timestamptz, nextval('service_request_serial');
        END IF;
    END LOOP;
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
