//! A plugin's key-value namespace, backed by the run database.

use mediaflow_plugin_api::{KeyValue, PluginError};
use mediaflow_store::{Store, KV_MAX_KEY, KV_MAX_VALUE};

/// Most bytes (keys and values) one namespace may hold unless `MEDIAFLOW_KV_MB` says
/// otherwise.
pub const DEFAULT_KV_QUOTA: u64 = 16 << 20;

/// The namespace quota: `MEDIAFLOW_KV_MB` mebibytes, or [`DEFAULT_KV_QUOTA`].
pub fn kv_quota() -> u64 {
    std::env::var("MEDIAFLOW_KV_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_KV_QUOTA, |mb| mb << 20)
}

/// The namespace of one plugin (its identity): plugins cannot see each other's keys, and
/// one namespace holds at most `quota` bytes.
pub struct StoreKv {
    pub store: Store,
    pub namespace: String,
    pub quota: u64,
}

fn store_error(e: mediaflow_store::StoreError) -> PluginError {
    PluginError::new("store", format!("key-value store: {e}")).retryable()
}

fn check_key(key: &str) -> Result<(), PluginError> {
    if key.is_empty() || key.len() > KV_MAX_KEY {
        return Err(PluginError::new(
            "bad_input",
            format!("key-value keys must be 1 to {KV_MAX_KEY} bytes long"),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl KeyValue for StoreKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PluginError> {
        check_key(key)?;
        self.store
            .kv_get(&self.namespace, key)
            .await
            .map_err(store_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), PluginError> {
        check_key(key)?;
        if value.len() > KV_MAX_VALUE {
            return Err(PluginError::new(
                "bad_input",
                format!(
                    "key-value values are limited to {KV_MAX_VALUE} bytes (got {})",
                    value.len()
                ),
            ));
        }
        let used = self
            .store
            .kv_usage(&self.namespace, key)
            .await
            .map_err(store_error)?;
        let wanted = used + (key.len() + value.len()) as u64;
        if wanted > self.quota {
            return Err(PluginError::new(
                "kv_quota",
                format!(
                    "the plugin's key-value namespace would hold {wanted} bytes, over its {} MiB quota",
                    self.quota >> 20
                ),
            )
            .with_help("delete keys it no longer needs, or raise MEDIAFLOW_KV_MB"));
        }
        self.store
            .kv_set(&self.namespace, key, value)
            .await
            .map_err(store_error)
    }

    async fn delete(&self, key: &str) -> Result<bool, PluginError> {
        check_key(key)?;
        self.store
            .kv_delete(&self.namespace, key)
            .await
            .map_err(store_error)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, PluginError> {
        self.store
            .kv_keys(&self.namespace, prefix)
            .await
            .map_err(store_error)
    }
}
