//! Host-side bindings generated from `sdk/wit`.
//!
//! Async on both sides: a call is a future the host can drop at its deadline or on
//! cancellation, even while the guest waits in a host call (a WASI sleep, `llm.generate`).

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use mediaflow::plugin::types::{Port, ValueType};
