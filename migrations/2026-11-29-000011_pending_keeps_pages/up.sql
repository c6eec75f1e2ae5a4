-- The sealer vacuums `audit_pending` every second it has sealed something, and the table is
-- then empty: each VACUUM truncated it to nothing, which takes an ACCESS EXCLUSIVE lock (every
-- audited transaction's append waits behind it) and scans all of shared buffers to drop the
-- table's pages. The emptied pages are reused by the next appends anyway.
ALTER TABLE audit_pending SET (vacuum_truncate = false, toast.vacuum_truncate = false);
