DROP FUNCTION audit_append(text[], text[], text[], text[], text[], text[], jsonb[], jsonb[], text[], text[], text[]);
DROP FUNCTION audit_seal(integer, integer);
DROP TABLE audit_pending;
DROP TRIGGER audit_events_notify ON audit_events;
CREATE OR REPLACE FUNCTION notify_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridhub_feed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_notify AFTER INSERT ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feed();
DROP FUNCTION hotline_order_locked(text);
DROP FUNCTION hotline_orders_locked(text[]);
