DROP FUNCTION audit_chain_head();
DROP TRIGGER regions_geometry_changed ON regions;
DROP FUNCTION bump_geometry_version();
DROP TABLE geometry_version;
