//! `mediaflow-llm`: llama.cpp text generation as a mediaflow plugin process.
//! mediaflow starts it on demand and talks to it over stdin/stdout.

mod batch;
mod cache;
mod choices;
mod generate;
mod ground;
mod guided;
mod json;
mod plugin;
mod sequence;

#[tokio::main]
async fn main() {
    let plugin = match plugin::Generate::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mediaflow-llm: cannot start llama.cpp: {e}");
            std::process::exit(1);
        }
    };
    mediaflow_protocol::serve(
        "mediaflow-llm",
        env!("CARGO_PKG_VERSION"),
        vec![mediaflow_plugin_api::typed(plugin)],
    )
    .await;
}
