//! This plugin's own key-value namespace, kept across runs (needs `permissions: [kv]`).

use crate::bindings::mediaflow::plugin::kv as host;
use crate::error::host_call;
use crate::Error;

pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    host_call("kv", || host::get(key))
}

pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    host_call("kv", || host::set(key, value))
}

/// Whether the key existed.
pub fn delete(key: &str) -> Result<bool, Error> {
    host_call("kv", || host::delete(key))
}

/// Keys starting with `prefix`, sorted.
pub fn keys(prefix: &str) -> Result<Vec<String>, Error> {
    host_call("kv", || host::keys(prefix))
}
