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

-- Seals pending rows in order, up to `max_rows` rows or, after the first row, `max_events`
-- events; returns the number of events sealed. The hashes are chained in a loop; the events
-- of all the rows are then inserted by one statement (one executor, one run of the statement
-- triggers: single submits leave a pending row per group, and a seal took several).
CREATE OR REPLACE FUNCTION audit_seal(max_rows integer DEFAULT 1000, max_events integer DEFAULT 5000)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint;
    prev bytea;
    r audit_pending;
    ids bigint[] := '{}';
    nrows integer := 0;
    n integer := 0;
    seqs bigint[] := '{}';
    ats timestamptz[] := '{}';
    texts text[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
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
        -- Element by element into the (expanded) arrays: appending whole arrays would copy
        -- them again for every row.
        FOR i IN 1..cardinality(tails) LOOP
            n := n + 1;
            seqs[n] := head + n;
            ats[n] := r.recorded_at;
            texts[n] := tails[i];
            prevs[n] := prev;
            prev := sha256(prev || convert_to('[' || (head + n)::text || ',' || micros || tails[i], 'UTF8'));
            hashes[n] := prev;
        END LOOP;
        nrows := nrows + 1;
        ids[nrows] := r.id;
    END LOOP;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    -- The columns are the hashed text's elements 2 to 11 (0 and 1 are seq and time), each text
    -- parsed once: without the fence (OFFSET 0) the planner pulls the subquery up and parses
    -- the text again for every column (134 µs an event, not 38). Rows of `audit_append` carry
    -- the same text beside their arrays, and are read the same way.
    INSERT INTO audit_events (seq, occurred_at, actor, actor_roles, action, entity_type, entity_id,
                              region_code, before, after, outcome, request_id, prev_hash, hash)
    SELECT t.seq, t.at, e.j ->> 2, ARRAY(SELECT jsonb_array_elements_text(e.j -> 3)),
           e.j ->> 4, e.j ->> 5, e.j ->> 6, e.j ->> 7, nullif(e.j -> 8, 'null'::jsonb),
           nullif(e.j -> 9, 'null'::jsonb), e.j ->> 10, e.j ->> 11, t.ph, t.h
      FROM unnest(seqs, ats, texts, prevs, hashes) AS t(seq, at, tail, ph, h)
      CROSS JOIN LATERAL (SELECT ('[0,0' || t.tail)::jsonb AS j OFFSET 0) e;
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

-- 4. The intake's two statements whose plans PostgreSQL made afresh at every call: for
-- parameters that are arrays it keeps preferring a custom plan (it sees their lengths), and
-- planning them cost about as much as running them for a group of single submits (0.47 ms a
-- call for the write, 0.35 ms for the categories). As functions that force a generic plan,
-- each is planned once per connection; their plans (index probes per element) suit any length.

-- The intake's write: new cases, the existing cases a batch extends, its reports and their
-- audit events (see `audit_record`), in one call.
CREATE FUNCTION intake_write(
    case_ids uuid[], case_nos text[], case_cats text[], case_grids text[], case_regions text[],
    case_owners text[], case_lats float8[], case_lngs float8[], case_firsts timestamptz[],
    case_lasts timestamptz[], case_counts int4[], case_flags text[],
    ext_ids uuid[], ext_counts int4[], ext_firsts timestamptz[], ext_lasts timestamptz[],
    r_ids uuid[], r_cids uuid[], r_hashes bytea[], r_sources int2[], r_systems text[],
    r_codes text[], r_unified text[], r_titles text[], r_descriptions text[], r_lats float8[],
    r_lngs float8[], r_claims text[], r_grids text[], r_regions text[], r_owners text[],
    r_occurred timestamptz[], r_reporters text[], r_attachments text[], r_submitters text[],
    r_cases uuid[], r_flags text[], r_outcomes int2[], r_reasons text[], r_phones bytea[],
    r_phone_ixs bytea[], events text[])
RETURNS void LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF cardinality(case_ids) > 0 THEN
        INSERT INTO cases (case_id, case_no, status, unified_category, grid_code, region_code, owner,
                           lat, lng, first_reported_at, last_reported_at, report_count, flags)
        SELECT id, no, 'REPORTED', cat, grid, region, owner, lat, lng, f, l, n,
               array_remove(string_to_array(fl, ','), '')
          FROM unnest(case_ids, case_nos, case_cats, case_grids, case_regions, case_owners,
                      case_lats, case_lngs, case_firsts, case_lasts, case_counts, case_flags)
               AS t(id, no, cat, grid, region, owner, lat, lng, f, l, n, fl);
    END IF;
    IF cardinality(ext_ids) > 0 THEN
        UPDATE cases c SET report_count = c.report_count + u.n,
               first_reported_at = LEAST(c.first_reported_at, u.f),
               last_reported_at = GREATEST(c.last_reported_at, u.l), version = c.version + 1,
               updated_at = now()
          FROM unnest(ext_ids, ext_counts, ext_firsts, ext_lasts) AS u(id, n, f, l)
         WHERE c.case_id = u.id;
    END IF;
    INSERT INTO reports (report_id, client_report_id, payload_hash, source, source_system,
                         category_code, unified_category, title, description, lat, lng,
                         claimed_grid_code, resolved_grid_code, region_code, owner, occurred_at,
                         reporter_id, submitted_by, attachments, case_id, flags, first_outcome,
                         first_case_id, merge_reason, reporter_phone_enc, reporter_phone_index)
    SELECT id, cid, h, src, sys, cat, uni, title, descr, lat, lng, claim, grid, region, owner, occ,
           rep, sub, array_remove(string_to_array(att, ','), ''), case_id,
           array_remove(string_to_array(fl, ','), ''), outcome, case_id, reason::jsonb, phone,
           phone_ix
      FROM unnest(r_ids, r_cids, r_hashes, r_sources, r_systems, r_codes, r_unified, r_titles,
                  r_descriptions, r_lats, r_lngs, r_claims, r_grids, r_regions, r_owners,
                  r_occurred, r_reporters, r_attachments, r_submitters, r_cases, r_flags,
                  r_outcomes, r_reasons, r_phones, r_phone_ixs)
           AS t(id, cid, h, src, sys, cat, uni, title, descr, lat, lng, claim, grid, region, owner,
                occ, rep, att, sub, case_id, fl, outcome, reason, phone, phone_ix);
    PERFORM audit_record(events);
END $$;

-- Each (source system, source code) pair's unified category and merge rule: the system's own
-- mapping, else a mapping for any system, else the code itself as a unified code.
CREATE FUNCTION categories_resolve(systems text[], codes text[])
RETURNS TABLE (source_system text, source_code text, unified text, radius double precision,
               window_hours integer)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT p.s, p.c, u.code, u.merge_radius_m, u.merge_window_hours
      FROM unnest(systems, codes) AS p(s, c)
     CROSS JOIN LATERAL (
           SELECT k.code, k.merge_radius_m, k.merge_window_hours FROM (
               SELECT 1 AS rank, m.unified_code AS code FROM category_mappings m
                WHERE m.source_system = p.s AND m.source_code = p.c
               UNION ALL SELECT 2, m.unified_code FROM category_mappings m
                WHERE m.source_system = '' AND m.source_code = p.c
               UNION ALL SELECT 3, cat.code FROM categories cat WHERE cat.code = p.c
           ) hit JOIN categories k ON k.code = hit.code
           ORDER BY hit.rank LIMIT 1
     ) u;
END $$;
