//! `mediaflow-asr`: whisper.cpp speech-to-text as a mediaflow plugin process.
//! mediaflow starts it on demand and talks to it over stdin/stdout. whisper.cpp brings its
//! own ggml, which cannot share a binary with llama.cpp's, so it lives here and not in
//! `mediaflow-llm`. `mediaflow-asr transcribe FILE [options]` runs it once, by hand.

use mediaflow_asr::{plugin, standalone};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("transcribe") {
        std::process::exit(standalone::main(&args[1..]));
    }
    mediaflow_protocol::serve_with_args(
        "mediaflow-asr",
        env!("CARGO_PKG_VERSION"),
        vec![mediaflow_plugin_api::typed(plugin::Transcribe::new())],
        &args,
    )
    .await;
}
