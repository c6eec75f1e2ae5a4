CREATE OR REPLACE FUNCTION audit_append(actors text[], roles text[], actions text[], entity_types text[],
                             entity_ids text[], regions text[], befores jsonb[], afters jsonb[],
                             outcomes text[], request_ids text[], tails text[])
RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_pending (actors, roles, actions, entity_types, entity_ids, regions, befores,
                               afters, outcomes, request_ids, tails)
    SELECT actors, roles, actions, entity_types, entity_ids, regions, befores, afters, outcomes,
           request_ids, tails
     WHERE coalesce(cardinality(tails), 0) > 0
$$;

DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.proname, pg_get_function_arguments(p.oid) AS args, p.prosrc
               FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'public'::regnamespace
                AND p.proname IN ('case_stats_apply', 'mediation_figures_add')
    LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION %I(%s) RETURNS void LANGUAGE sql AS %L',
                       f.proname, f.args,
                       regexp_replace(regexp_replace(f.prosrc, E'^BEGIN\n', ''), E';\nEND$', ''));
    END LOOP;
END $$;

ALTER FUNCTION case_stats_fold() RESET work_mem;
ALTER TABLE audit_pending
    ALTER COLUMN actors SET COMPRESSION default,
    ALTER COLUMN roles SET COMPRESSION default,
    ALTER COLUMN actions SET COMPRESSION default,
    ALTER COLUMN entity_types SET COMPRESSION default,
    ALTER COLUMN entity_ids SET COMPRESSION default,
    ALTER COLUMN regions SET COMPRESSION default,
    ALTER COLUMN befores SET COMPRESSION default,
    ALTER COLUMN afters SET COMPRESSION default,
    ALTER COLUMN outcomes SET COMPRESSION default,
    ALTER COLUMN request_ids SET COMPRESSION default,
    ALTER COLUMN tails SET COMPRESSION default;
