-- An open case is updated by every report that joins it (its count and times), by the
-- workflow and by the SLA ticker, none of which changes an indexed column. With free room on
-- its page such an update is HOT: no new index entries, and the old version is pruned with
-- the page. Without it, every update of a busy case left a dead entry in the open-case GiST
-- index that each merge look-up near it then visited (the intake's candidate search).
ALTER TABLE cases SET (fillfactor = 80);
