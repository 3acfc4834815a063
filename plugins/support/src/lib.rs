//! Helpers that mediaflow's native plugin processes (`mediaflow-llm`, `mediaflow-asr`) share.
//! Not part of the plugin protocol: a plugin binary in another language needs none of it.

mod pinned;

pub use pinned::PinnedThread;
