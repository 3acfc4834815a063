//! Host-side bindings generated from `sdk/wit`.

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "plugin",
});

pub use mediaflow::plugin::types::{Port, ValueType};
