ALTER TABLE audit_pending RESET (vacuum_truncate, toast.vacuum_truncate);
