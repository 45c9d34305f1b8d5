-- The catalog (issue 7). The PostgreSQL twin of migrations/sqlite/0006.

CREATE TABLE categories (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL,
    parent_id     BIGINT REFERENCES categories (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX categories_by_parent ON categories (parent_id);

-- Names sort bytewise (COLLATE "C"), as in SQLite, so both backends list in one order.
CREATE TABLE products (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku           TEXT    NOT NULL,
    sku_key       TEXT    NOT NULL,
    name          TEXT    COLLATE "C" NOT NULL,
    description   TEXT    NOT NULL,
    price_minor   BIGINT  NOT NULL CHECK (price_minor >= 0),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    category_id   BIGINT  REFERENCES categories (id),
    active        BOOLEAN NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    deleted_at_ms BIGINT
);
CREATE UNIQUE INDEX products_sku_live ON products (sku_key) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_category ON products (category_id) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_created ON products (created_at_ms, id) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_price ON products (price_minor, id) WHERE deleted_at_ms IS NULL;
CREATE INDEX products_by_name ON products (name, id) WHERE deleted_at_ms IS NULL;

CREATE TABLE product_attributes (
    product_id   BIGINT           NOT NULL REFERENCES products (id),
    key          TEXT             NOT NULL,
    kind         TEXT             NOT NULL CHECK (kind IN ('text', 'number', 'boolean')),
    text_value   TEXT,
    number_value DOUBLE PRECISION,
    bool_value   BOOLEAN,
    PRIMARY KEY (product_id, key),
    CHECK ((kind = 'text') = (text_value IS NOT NULL)
       AND (kind = 'number') = (number_value IS NOT NULL)
       AND (kind = 'boolean') = (bool_value IS NOT NULL))
);
CREATE INDEX product_attributes_by_text ON product_attributes (key, text_value);
CREATE INDEX product_attributes_by_number ON product_attributes (key, number_value);

CREATE TABLE warehouses (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    active        BOOLEAN NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);
