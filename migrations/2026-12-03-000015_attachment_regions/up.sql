-- Attachments belong to the regions of those who uploaded them: a report may cite an
-- attachment uploaded from a region that holds the reporter's or lies inside it. The same
-- bytes uploaded from two regions are one attachment with both. Attachments uploaded before
-- (no region known) stay citable by any reporter.
ALTER TABLE attachments ADD COLUMN upload_regions text[] NOT NULL DEFAULT '{}';
