DROP TRIGGER IF EXISTS audit_events_hotline_outbox ON audit_events;
DROP FUNCTION IF EXISTS hotline_outbox_capture();
DROP TABLE IF EXISTS hotline_outbox;
DROP TABLE IF EXISTS hotline_orders;
DROP TABLE IF EXISTS service_requests;
DROP SEQUENCE IF EXISTS service_request_serial;
DROP TABLE IF EXISTS catalog_items;
