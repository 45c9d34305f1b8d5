-- Issue 15: the console lists the email outbox newest first, filtered by status ("failed"
-- above all). Without this index a page of a rare status would walk the whole table.
CREATE INDEX notifications_outbox ON notifications (status, id) WHERE channel = 'email';
