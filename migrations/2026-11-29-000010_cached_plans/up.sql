-- A pending audit row lives for milliseconds but holds a whole batch's events (about 0.3 MB
-- for 1,000 reports): compressing its arrays with pglz took about 3 % of the machine's CPU
-- in batch ingest. lz4 compresses them at a fraction of the cost.
ALTER TABLE audit_pending
    ALTER COLUMN actors SET COMPRESSION lz4,
    ALTER COLUMN roles SET COMPRESSION lz4,
    ALTER COLUMN actions SET COMPRESSION lz4,
    ALTER COLUMN entity_types SET COMPRESSION lz4,
    ALTER COLUMN entity_ids SET COMPRESSION lz4,
    ALTER COLUMN regions SET COMPRESSION lz4,
    ALTER COLUMN befores SET COMPRESSION lz4,
    ALTER COLUMN afters SET COMPRESSION lz4,
    ALTER COLUMN outcomes SET COMPRESSION lz4,
    ALTER COLUMN request_ids SET COMPRESSION lz4,
    ALTER COLUMN tails SET COMPRESSION lz4;

-- The fold groups tens of thousands of deltas after a busy half minute; with the default
-- 4 MB of work memory its sorts spilled to disk.
ALTER FUNCTION case_stats_fold() SET work_mem = '64MB';

-- SQL-language functions are parsed and planned again at every call (PostgreSQL 15 caches
-- their plans only within one calling statement); plpgsql keeps each statement's plan for
-- the session. The statistics helpers run in every transaction that writes cases or mediation
-- records, and their grouped INSERTs are costly to plan: in single report submissions,
-- parsing and planning showed up in the database's CPU profile. Same bodies, now in plpgsql.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.proname, pg_get_function_arguments(p.oid) AS args, p.prosrc
               FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE l.lanname = 'sql' AND p.pronamespace = 'public'::regnamespace
                AND p.proname IN ('case_stats_apply', 'mediation_figures_add')
    LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION %I(%s) RETURNS void LANGUAGE plpgsql AS %L',
                       f.proname, f.args, E'BEGIN\n' || rtrim(f.prosrc, E' \n;') || E';\nEND');
    END LOOP;
END $$;

-- The same for the audit append, run at the end of every audited transaction.
CREATE OR REPLACE FUNCTION audit_append(actors text[], roles text[], actions text[],
                                        entity_types text[], entity_ids text[], regions text[],
                                        befores jsonb[], afters jsonb[], outcomes text[],
                                        request_ids text[], tails text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF coalesce(cardinality(tails), 0) > 0 THEN
        INSERT INTO audit_pending (actors, roles, actions, entity_types, entity_ids, regions,
                                   befores, afters, outcomes, request_ids, tails)
        VALUES (audit_append.actors, audit_append.roles, audit_append.actions,
                audit_append.entity_types, audit_append.entity_ids, audit_append.regions,
                audit_append.befores, audit_append.afters, audit_append.outcomes,
                audit_append.request_ids, audit_append.tails);
    END IF;
END $$;
