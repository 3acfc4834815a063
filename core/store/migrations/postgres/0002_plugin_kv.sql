-- Key-value namespaces of sandboxed plugins (`permissions: [kv]`).
CREATE TABLE plugin_kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, key)
);
