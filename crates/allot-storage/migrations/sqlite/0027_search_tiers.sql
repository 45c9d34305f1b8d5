-- Search tiers (issue 19): a relevance listing reads the products whose name has every word,
-- then those with the rest in attribute values, then the others. On SQLite the FTS5 index of
-- 0024 answers each with a column filter ({name}, {name search_attributes}): nothing to add.
SELECT 1;
