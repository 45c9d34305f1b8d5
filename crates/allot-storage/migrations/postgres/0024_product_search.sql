-- Product search (issue 19). The PostgreSQL twin of migrations/sqlite/0024: a generated
-- tsvector over name (weight A), text attribute values (B) and description (C), GIN-indexed,
-- ranked by ts_rank.
ALTER TABLE products ADD COLUMN search_attributes TEXT NOT NULL DEFAULT '';
UPDATE products p SET search_attributes = COALESCE(
    (SELECT string_agg(a.text_value, ' ' ORDER BY a.key) FROM product_attributes a
     WHERE a.product_id = p.id AND a.kind = 'text'),
    '');

-- The 'simple' configuration (no stemming, no stop words: results do not depend on a
-- language). Punctuation, spaces and control characters become spaces before parsing, so the
-- parser sees runs of letters and digits only, as SQLite's unicode61 tokenizer does (without
-- this it would keep "1.5", "foo.com" or "a-b" as words of their own). Adding the column
-- computes it for every existing product: the backfill.
ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig,
        regexp_replace(name, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g')), 'A')
    || setweight(to_tsvector('simple'::regconfig,
        regexp_replace(search_attributes, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g')), 'B')
    || setweight(to_tsvector('simple'::regconfig,
        regexp_replace(description, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g')), 'C')
) STORED;
CREATE INDEX products_search ON products USING GIN (search_vector);
