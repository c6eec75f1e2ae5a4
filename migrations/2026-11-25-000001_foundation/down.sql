DROP TABLE idempotency_keys;
DROP TRIGGER audit_events_append_only ON audit_events;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE workers;
DROP TABLE departments;
DROP TABLE regions;
DROP EXTENSION IF EXISTS postgis;
