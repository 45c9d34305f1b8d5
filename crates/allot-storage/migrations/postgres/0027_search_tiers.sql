-- Search tiers (issue 19): a relevance listing reads the products whose name has every word,
-- then those with the rest in attribute values, then the others, each tier in id order. A tier
-- is asked of columns of its own (name; name and attribute values; attribute values;
-- description; normalized as search_vector in 0024), each GIN-indexed and with statistics of
-- its own. A weight-restricted query on search_vector (':A') could not be: the index cannot
-- check weights and the statistics do not keep them, so a word frequent in descriptions but in
-- no name looked frequent in names, and the planner walked the whole table for an empty tier.
ALTER TABLE products
    ADD COLUMN search_name tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            regexp_replace(name, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g'))) STORED,
    ADD COLUMN search_head tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            regexp_replace(name || ' ' || search_attributes,
                '[[:punct:][:space:][:cntrl:]]+', ' ', 'g'))) STORED,
    ADD COLUMN search_attrs tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            regexp_replace(search_attributes, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g'))) STORED,
    ADD COLUMN search_desc tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            regexp_replace(description, '[[:punct:][:space:][:cntrl:]]+', ' ', 'g'))) STORED;
CREATE INDEX products_search_name ON products USING GIN (search_name);
CREATE INDEX products_search_head ON products USING GIN (search_head);
CREATE INDEX products_search_attrs ON products USING GIN (search_attrs);
CREATE INDEX products_search_desc ON products USING GIN (search_desc);
ANALYZE products;
