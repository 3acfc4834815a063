//! A plugin's key-value namespace, backed by the run database.

use mediaflow_plugin_api::{KeyValue, PluginError};
use mediaflow_store::{Store, KV_MAX_KEY, KV_MAX_VALUE};

/// The namespace of one plugin (its name): plugins cannot see each other's keys.
pub struct StoreKv {
    pub store: Store,
    pub namespace: String,
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
