-- A lighter intake: each audited event is recorded once, as the canonical text the chain
-- hashes, and new cases' statistics are summed straight from the inserted rows.

-- 1. Pending events as their canonical text alone. An event's `tail` (migration 8: the JSON
-- array [actor, roles, action, entity type, entity id, region, before, after, outcome,
-- request id] after the two elements the sealer adds) holds every field of the event; the
-- other ten arrays repeated it, and building, binding, parsing and compressing them again cost
-- the intake about a quarter of its own CPU (before and after were serialized three times).
-- `audit_record` stores the tails alone; `audit_seal` reads the columns back from the text it
-- hashes, so what is stored is by construction what was hashed. Rows that `audit_append` still
-- records (a binary from before this migration, during a rolling upgrade) hold the same text
-- and are sealed the same way.
ALTER TABLE audit_pending
    ALTER COLUMN actors DROP NOT NULL,
    ALTER COLUMN roles DROP NOT NULL,
    ALTER COLUMN actions DROP NOT NULL,
    ALTER COLUMN entity_types DROP NOT NULL,
    ALTER COLUMN entity_ids DROP NOT NULL,
    ALTER COLUMN regions DROP NOT NULL,
    ALTER COLUMN befores DROP NOT NULL,
    ALTER COLUMN afters DROP NOT NULL,
    ALTER COLUMN outcomes DROP NOT NULL,
    ALTER COLUMN request_ids DROP NOT NULL;

CREATE FUNCTION audit_record(tails text[]) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF coalesce(cardinality(tails), 0) > 0 THEN
        INSERT INTO audit_pending (tails) VALUES (audit_record.tails);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION audit_seal(max_rows integer DEFAULT 1000, max_events integer DEFAULT 5000)
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
    -- same rows in the same order giving the same numbers and hashes.
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
        -- The columns are the hashed text's elements 2 to 11 (0 and 1 are seq and time),
        -- each text parsed once: without the fence (OFFSET 0) the planner pulls the subquery
        -- up and parses the text again for every column (134 µs an event, not 38). Rows of
        -- `audit_append` carry the same text beside their arrays, and are read the same way.
        INSERT INTO audit_events (seq, occurred_at, actor, actor_roles, action, entity_type, entity_id,
                                  region_code, before, after, outcome, request_id, prev_hash, hash)
        SELECT t.seq, r.recorded_at, e.j ->> 2, ARRAY(SELECT jsonb_array_elements_text(e.j -> 3)),
               e.j ->> 4, e.j ->> 5, e.j ->> 6, e.j ->> 7, nullif(e.j -> 8, 'null'::jsonb),
               nullif(e.j -> 9, 'null'::jsonb), e.j ->> 10, e.j ->> 11, t.ph, t.h
          FROM unnest(seqs, tails, prevs, hashes) AS t(seq, tail, ph, h)
          CROSS JOIN LATERAL (SELECT ('[0,0' || t.tail)::jsonb AS j OFFSET 0) e;
        ids := ids || r.id;
    END LOOP;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM audit_pending WHERE id = ANY (ids);
    RETURN n;
END $$;

-- 2. A case's statistics key and vector (see `case_stats_apply`, migration 4) as one SQL
-- expression list, inlined by the planner wherever it is used.
CREATE FUNCTION case_stats_vector(sgn integer, u cases)
RETURNS TABLE (sg integer, region_code text, day date, category text, status text,
               assignee text, overdue boolean, on_time integer, t_register numeric,
               t_dispatch numeric, t_sign numeric, t_handle numeric, t_verify numeric)
LANGUAGE sql STABLE AS $$
    SELECT sgn, u.region_code, (u.first_reported_at AT TIME ZONE 'Asia/Shanghai')::date,
           u.unified_category, u.status, u.assignee,
           ('OVERDUE' = ANY (u.flags) AND u.status IN ('DISPATCHED', 'SIGNED', 'HANDLED')),
           (u.status = 'CLOSED' AND (u.deadline IS NULL OR u.handled_at <= u.deadline))::int,
           extract(epoch FROM u.registered_at - u.first_reported_at),
           extract(epoch FROM u.dispatched_at - u.registered_at),
           extract(epoch FROM u.signed_at - u.dispatched_at),
           extract(epoch FROM u.handled_at - u.signed_at),
           extract(epoch FROM u.closed_at - u.handled_at)
$$;

-- Updates and deletes (one case at a time, from the workflow) keep passing their rows as
-- arrays; the sums are the same as in migration 4.
CREATE OR REPLACE FUNCTION case_stats_apply(olds cases[], news cases[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO case_stats_delta (region_code, day, category, status, assignee, overdue, cases, closed_on_time,
        register_n, register_secs, dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs, verify_n, verify_secs)
SELECT region_code, day, category, status, assignee, overdue, sum(sg), sum(sg * on_time),
       sum(sg * (t_register IS NOT NULL)::int), coalesce(sum(sg * t_register), 0),
       sum(sg * (t_dispatch IS NOT NULL)::int), coalesce(sum(sg * t_dispatch), 0),
       sum(sg * (t_sign IS NOT NULL)::int), coalesce(sum(sg * t_sign), 0),
       sum(sg * (t_handle IS NOT NULL)::int), coalesce(sum(sg * t_handle), 0),
       sum(sg * (t_verify IS NOT NULL)::int), coalesce(sum(sg * t_verify), 0)
  FROM (SELECT v.* FROM unnest(olds) o CROSS JOIN LATERAL case_stats_vector(-1, o) v
        UNION ALL
        SELECT v.* FROM unnest(news) n CROSS JOIN LATERAL case_stats_vector(1, n) v) v
 GROUP BY region_code, day, category, status, assignee, overdue
HAVING sum(sg) <> 0 OR sum(sg * on_time) <> 0
    OR coalesce(sum(sg * t_register), 0) <> 0 OR coalesce(sum(sg * t_dispatch), 0) <> 0
    OR coalesce(sum(sg * t_sign), 0) <> 0 OR coalesce(sum(sg * t_handle), 0) <> 0
    OR coalesce(sum(sg * t_verify), 0) <> 0
    OR sum(sg * (t_register IS NOT NULL)::int) <> 0 OR sum(sg * (t_dispatch IS NOT NULL)::int) <> 0
    OR sum(sg * (t_sign IS NOT NULL)::int) <> 0 OR sum(sg * (t_handle IS NOT NULL)::int) <> 0
    OR sum(sg * (t_verify IS NOT NULL)::int) <> 0;
END $$;

-- Inserts (the intake: up to 250 new cases a statement) sum straight from the transition
-- table. Packing the rows into an array of whole case rows and unnesting it again took 30 %
-- of the statement's time for 250 cases. Only additions here, so every key has a positive
-- count and needs no HAVING.
CREATE OR REPLACE FUNCTION cases_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO case_stats_delta (region_code, day, category, status, assignee, overdue, cases, closed_on_time,
        register_n, register_secs, dispatch_n, dispatch_secs, sign_n, sign_secs, handle_n, handle_secs, verify_n, verify_secs)
SELECT v.region_code, v.day, v.category, v.status, v.assignee, v.overdue, count(*), sum(v.on_time),
       count(v.t_register), coalesce(sum(v.t_register), 0), count(v.t_dispatch), coalesce(sum(v.t_dispatch), 0),
       count(v.t_sign), coalesce(sum(v.t_sign), 0), count(v.t_handle), coalesce(sum(v.t_handle), 0),
       count(v.t_verify), coalesce(sum(v.t_verify), 0)
  FROM new_rows n CROSS JOIN LATERAL case_stats_vector(1, n::cases) v
 GROUP BY v.region_code, v.day, v.category, v.status, v.assignee, v.overdue;
RETURN NULL;
END $$;

-- 3. The merge look-up's index: open cases by location, as a space-partitioning tree
-- (PostGIS's SP-GiST quadtree) instead of an R-tree (GiST). The look-up probes it once per
-- report with a box of about the merge radius; the R-tree checks every entry of a page at each
-- level. 250 probes over 79,000 open cases: 10.6–12.0 ms with GiST, 6.8 ms with SP-GiST; an
-- insert costs the same. (SP-GiST over the built-in point type probed as fast, but its
-- operator has no selectivity estimate, and the planner then joined by scanning all cases.)
CREATE INDEX cases_open_location_spgist ON cases USING spgist (location)
    WHERE status NOT IN ('CLOSED', 'VOID', 'MERGED');
DROP INDEX cases_open_location_gist;
