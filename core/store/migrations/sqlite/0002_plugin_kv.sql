-- Key-value namespaces of sandboxed plugins (`permissions: [kv]`).
CREATE TABLE plugin_kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
