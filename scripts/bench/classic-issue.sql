-- The classic design of campaign issuance, for comparison with Allot (docs/PERFORMANCE.md):
-- per request, one transaction with one conditional UPDATE of the campaign row and one INSERT
-- of the code, against Allot's own tables and indexes. The row lock serialises every request.
-- Run by scripts/bench-postgres.sh:  pgbench -n -f classic-issue.sql -D campaign=ID ...
-- (The campaign is large enough never to sell out during a run; the UPDATE then returns the
-- claimed number, which becomes the code's sequence number.)
BEGIN;
UPDATE campaigns SET issued = issued + 1 WHERE id = :campaign AND issued < total RETURNING issued \gset
INSERT INTO campaign_coupons (code, campaign_id, seq, issued_at_ms)
  VALUES (substr(md5(random()::text), 1, 10), :campaign, :issued,
          (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
COMMIT;
