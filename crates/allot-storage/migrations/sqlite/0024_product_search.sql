-- Product search (issue 19): full text over a product's name, description and text attribute
-- values, ranked by bm25.
--
-- search_attributes is the product's text attribute values in key order, joined by spaces,
-- written by the same statement that writes the product (and backfilled here).
ALTER TABLE products ADD COLUMN search_attributes TEXT NOT NULL DEFAULT '';
UPDATE products SET search_attributes = COALESCE(
    (SELECT group_concat(text_value, ' ') FROM
        (SELECT a.text_value FROM product_attributes a
         WHERE a.product_id = products.id AND a.kind = 'text' ORDER BY a.key)),
    '');

-- An external-content FTS5 index over products: it stores only the index, the text stays in
-- products. Words are runs of letters and digits, case-folded, diacritics kept (as the
-- PostgreSQL twin and the search text's own parsing do). Prefix indexes of 2 and 3 characters
-- make "as one types" searches cheap. Deleted products stay indexed (their rows stay) and are
-- left out by the join on deleted_at_ms.
CREATE VIRTUAL TABLE products_fts USING fts5(
    name, description, search_attributes,
    content = 'products', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0',
    prefix = '2 3'
);
INSERT INTO products_fts (products_fts) VALUES ('rebuild');

-- Kept in sync by triggers, so every write of a product updates the index in its transaction.
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description, search_attributes)
    VALUES (new.id, new.name, new.description, new.search_attributes);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description, search_attributes ON products
BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, search_attributes)
    VALUES ('delete', old.id, old.name, old.description, old.search_attributes);
    INSERT INTO products_fts (rowid, name, description, search_attributes)
    VALUES (new.id, new.name, new.description, new.search_attributes);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, search_attributes)
    VALUES ('delete', old.id, old.name, old.description, old.search_attributes);
END;
