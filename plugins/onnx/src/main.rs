//! `mediaflow-onnx`: tract ONNX plugins as a mediaflow plugin process. mediaflow starts it on
//! demand and talks to it over stdin/stdout. `mediaflow-onnx train-classifier …` trains a
//! text classifier head (`mediaflow train classifier` runs it).

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("train-classifier") {
        let code = tokio::task::block_in_place(|| mediaflow_onnx::train::main(&args[1..]));
        std::process::exit(code);
    }
    mediaflow_protocol::serve_with_args(
        "mediaflow-onnx",
        env!("CARGO_PKG_VERSION"),
        mediaflow_onnx::plugins(),
        &args,
    )
    .await;
}
