DROP FUNCTION categories_resolve(text[], text[]);
DROP FUNCTION intake_write(uuid[], text[], text[], text[], text[], text[], float8[], float8[],
    timestamptz[], timestamptz[], int4[], text[], uuid[], int4[], timestamptz[], timestamptz[],
    uuid[], uuid[], bytea[], int2[], text[], text[], text[], text[], text[], float8[], float8[],
    text[], text[], text[], text[], timestamptz[], text[], text[], text[], uuid[], text[], int2[],
    text[], bytea[], bytea[], text[]);
CREATE INDEX cases_open_location_gist ON cases USING gist (location)
    WHERE status NOT IN ('CLOSED', 'VOID', 'MERGED');
DROP INDEX cases_open_location_spgist;

-- Seal what is pending first: the older `audit_seal` cannot read rows of tails alone.
SELECT audit_seal(1000000, 2147483647);

CREATE OR REPLACE FUNCTION cases_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM case_stats_apply('{}'::cases[], array(SELECT n::cases FROM new_rows n));
    RETURN NULL;
END $$;

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
  FROM (
    SELECT u.sg, u.region_code, (u.first_reported_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
           u.unified_category AS category, u.status, u.assignee,
           ('OVERDUE' = ANY (u.flags) AND u.status IN ('DISPATCHED', 'SIGNED', 'HANDLED')) AS overdue,
           (u.status = 'CLOSED' AND (u.deadline IS NULL OR u.handled_at <= u.deadline))::int AS on_time,
           extract(epoch FROM u.registered_at - u.first_reported_at) AS t_register,
           extract(epoch FROM u.dispatched_at - u.registered_at) AS t_dispatch,
           extract(epoch FROM u.signed_at - u.dispatched_at) AS t_sign,
           extract(epoch FROM u.handled_at - u.signed_at) AS t_handle,
           extract(epoch FROM u.closed_at - u.handled_at) AS t_verify
      FROM (SELECT -1 AS sg, o.* FROM unnest(olds) o
            UNION ALL SELECT 1, n.* FROM unnest(news) n) u
  ) v
 GROUP BY region_code, day, category, status, assignee, overdue
HAVING sum(sg) <> 0 OR sum(sg * on_time) <> 0
    OR coalesce(sum(sg * t_register), 0) <> 0 OR coalesce(sum(sg * t_dispatch), 0) <> 0
    OR coalesce(sum(sg * t_sign), 0) <> 0 OR coalesce(sum(sg * t_handle), 0) <> 0
    OR coalesce(sum(sg * t_verify), 0) <> 0
    OR sum(sg * (t_register IS NOT NULL)::int) <> 0 OR sum(sg * (t_dispatch IS NOT NULL)::int) <> 0
    OR sum(sg * (t_sign IS NOT NULL)::int) <> 0 OR sum(sg * (t_handle IS NOT NULL)::int) <> 0
    OR sum(sg * (t_verify IS NOT NULL)::int) <> 0;
END $$;

DROP FUNCTION case_stats_vector(integer, cases);

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
    IF NOT EXISTS (SELECT 1 FROM audit_pending p ORDER BY p.id LIMIT 1) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7270002);
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT a.seq, a.hash INTO head, prev FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, decode(repeat('00', 32), 'hex'));
    FOR r IN SELECT * FROM audit_pending p ORDER BY p.id LIMIT max_rows LOOP
        EXIT WHEN n >= max_events;
        micros := (extract(epoch FROM r.recorded_at) * 1000000)::bigint::text;
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

DROP FUNCTION audit_record(text[]);
ALTER TABLE audit_pending
    ALTER COLUMN actors SET NOT NULL,
    ALTER COLUMN roles SET NOT NULL,
    ALTER COLUMN actions SET NOT NULL,
    ALTER COLUMN entity_types SET NOT NULL,
    ALTER COLUMN entity_ids SET NOT NULL,
    ALTER COLUMN regions SET NOT NULL,
    ALTER COLUMN befores SET NOT NULL,
    ALTER COLUMN afters SET NOT NULL,
    ALTER COLUMN outcomes SET NOT NULL,
    ALTER COLUMN request_ids SET NOT NULL;
