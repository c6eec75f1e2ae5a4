ALTER TABLE attachments DROP COLUMN upload_regions;
