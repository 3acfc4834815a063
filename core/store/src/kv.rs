//! Per-plugin key-value namespaces (`permissions: [kv]`).

use sqlx::Row;

use crate::sql::Store;
use crate::{now_ms, Result};

/// Longest key and value a plugin may store.
pub const KV_MAX_KEY: usize = 1024;
pub const KV_MAX_VALUE: usize = 1 << 20;

impl Store {
    pub async fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT value FROM plugin_kv WHERE namespace = $1 AND key = $2")
                    .bind(namespace)
                    .bind(key)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    pub async fn kv_set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<()> {
        self.retry(|| {
            sqlx::query(
            "INSERT INTO plugin_kv (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(namespace)
        .bind(key)
        .bind(value.to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// Bytes `namespace` holds (keys and values), leaving out `except` (a key about to be
    /// replaced).
    pub async fn kv_usage(&self, namespace: &str, except: &str) -> Result<u64> {
        let row = self
            .retry(|| {
                sqlx::query(
                    "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM plugin_kv \
             WHERE namespace = $1 AND key <> $2",
                )
                .bind(namespace)
                .bind(except)
                .fetch_one(&self.pool)
            })
            .await?;
        let used: i64 = row.try_get(0)?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    pub async fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        let done = self
            .retry(|| {
                sqlx::query("DELETE FROM plugin_kv WHERE namespace = $1 AND key = $2")
                    .bind(namespace)
                    .bind(key)
                    .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keys of `namespace` starting with `prefix`, sorted.
    pub async fn kv_keys(&self, namespace: &str, prefix: &str) -> Result<Vec<String>> {
        let rows = self
            .retry(|| {
                sqlx::query("SELECT key FROM plugin_kv WHERE namespace = $1 ORDER BY key")
                    .bind(namespace)
                    .fetch_all(&self.pool)
            })
            .await?;
        let mut keys = Vec::new();
        for r in rows {
            let key: String = r.try_get(0)?;
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(keys)
    }
}
