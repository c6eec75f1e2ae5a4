DROP TABLE IF EXISTS mediation_follow_ups;
DROP TABLE IF EXISTS mediation_agreements;
DROP TABLE IF EXISTS mediation_sessions;
DROP TABLE IF EXISTS mediation_parties;
DROP TABLE IF EXISTS mediation_cases;
DROP FUNCTION IF EXISTS mediation_append_only();
DROP SEQUENCE IF EXISTS mediation_serial;
