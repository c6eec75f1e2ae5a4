ALTER TABLE cases RESET (fillfactor);
