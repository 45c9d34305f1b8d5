-- The catalog (issue 7): categories (a tree), products with typed attributes, warehouses.

-- A tree: parent_id points up. Cycles are refused by the update operation, which walks the
-- new parent's ancestors inside the writer's transaction.
CREATE TABLE categories (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    parent_id     INTEGER REFERENCES categories (id),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX categories_by_parent ON categories (parent_id);

-- Deleting a product marks it (deleted_at_ms): orders will refer to it. A deleted product is
-- hidden everywhere and its SKU is free again, so the unique index covers live products only.
-- sku_key is the SKU case-folded: SKUs are unique case-insensitively.
CREATE TABLE products (
    id            INTEGER PRIMARY KEY,
    sku           TEXT    NOT NULL,
    sku_key       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    price_minor   INTEGER NOT NULL CHECK (price_minor >= 0),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    category_id   INTEGER REFERENCES categories (id),
    active        INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER
);
CREATE UNIQUE INDEX products_sku_live ON products (sku_key) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_category ON products (category_id) WHERE deleted_at_ms IS NULL;
-- The listing's sort orders, ties broken by id.
CREATE INDEX products_by_created ON products (created_at_ms, id) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_price ON products (price_minor, id) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_name ON products (name, id) WHERE deleted_at_ms IS NULL;

-- One row per attribute, one typed column set: filtering is an indexed lookup per key.
CREATE TABLE product_attributes (
    product_id   INTEGER NOT NULL REFERENCES products (id),
    key          TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('text', 'number', 'boolean')),
    text_value   TEXT,
    number_value REAL,
    bool_value   INTEGER,
    PRIMARY KEY (product_id, key),
    CHECK ((kind = 'text') = (text_value IS NOT NULL)
       AND (kind = 'number') = (number_value IS NOT NULL)
       AND (kind = 'boolean') = (bool_value IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX product_attributes_by_text ON product_attributes (key, text_value);
CREATE INDEX product_attributes_by_number ON product_attributes (key, number_value);

-- code is upper-cased by the domain, so UNIQUE is case-insensitive.
CREATE TABLE warehouses (
    id            INTEGER PRIMARY KEY,
    code          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    active        INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
