//! Generation speed of `llm.generate` (engine → process protocol → llama.cpp) against
//! llama.cpp itself: `benches/reference.cpp`, a plain C++ generation loop compiled against
//! the llama.cpp sources the `llama-cpp-sys-2` crate vendors and linked with the static
//! libraries that crate built. (The crate ships llama.cpp without the sources of its tools,
//! so `llama-bench` cannot be built from it.) Same GGUF, prompt, threads and token count,
//! greedy, side by side in one run.
//!
//! `cargo bench -p mediaflow-llm --bench generate` (needs `mediaflow models pull
//! smollm2-135m-instruct`).

use std::path::{Path, PathBuf};
use std::process::Command;

use mediaflow_engine::{EngineOptions, RunControl};
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_tests::{Db, Harness};
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m-instruct";
const THREADS: usize = 2;
const GEN: usize = 128;
const REPS: usize = 5;

fn vendored_llama_cpp() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let src = home.join("registry/src");
    for index in std::fs::read_dir(src).ok()?.flatten() {
        let dir = index.path().join("llama-cpp-sys-2-0.1.160/llama.cpp");
        if dir.join("CMakeLists.txt").is_file() {
            return Some(dir);
        }
    }
    None
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The static libraries llama-cpp-sys-2 built for this profile (the newest build).
fn llama_libs() -> PathBuf {
    let build = target_dir().join("release/build");
    std::fs::read_dir(&build)
        .expect("a release build")
        .flatten()
        .map(|e| e.path().join("out/lib"))
        .filter(|p| p.join("libllama.a").is_file())
        .max_by_key(|p| {
            std::fs::metadata(p.join("libllama.a"))
                .and_then(|m| m.modified())
                .ok()
        })
        .expect("libllama.a built by llama-cpp-sys-2")
}

/// Compiles `reference.cpp` against the vendored headers and the crate's own libraries.
fn reference_binary() -> PathBuf {
    let src = vendored_llama_cpp().expect("llama-cpp-sys-2 0.1.160 sources in the cargo registry");
    let bin = target_dir().join("llama-reference");
    let ok = Command::new("c++")
        .args(["-O3", "-march=native", "-std=c++17"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference.cpp"))
        .arg("-I")
        .arg(src.join("include"))
        .arg("-I")
        .arg(src.join("ggml/include"))
        .arg("-L")
        .arg(llama_libs())
        .args([
            "-lllama",
            "-lggml",
            "-lggml-cpu",
            "-lggml-base",
            "-fopenmp",
            "-lpthread",
            "-o",
        ])
        .arg(&bin)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "could not build the llama.cpp reference");
    bin
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let models = std::env::var_os("MEDIAFLOW_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".local/share/mediaflow/models")
        });
    let model =
        match mediaflow_models::ModelStore::open(models.clone()).and_then(|s| s.resolve(MODEL)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}: {}", e.help().unwrap_or_default());
                std::process::exit(1);
            }
        };

    let prompt =
        "The history of the city begins in Roman times, when a fort was built on the river. "
            .repeat(4);
    // llama.cpp's reference: same prompt, same number of generated tokens, greedy.
    let reference = reference_binary();
    let (mut ref_pp, mut ref_tg) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let out = Command::new(&reference)
            .arg(&model)
            .arg(&prompt)
            .arg(GEN.to_string())
            .arg(THREADS.to_string())
            .output()
            .expect("the reference runs");
        let v: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");
        ref_pp.push(v["pp_tps"].as_f64().unwrap_or(f64::NAN));
        ref_tg.push(v["tg_tps"].as_f64().unwrap_or(f64::NAN));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ref_pp, ref_tg) = (mean(&ref_pp), mean(&ref_tg));

    // mediaflow: the same model and threads, greedy, through the engine and the protocol.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tg, pp, wall) = rt.block_on(async {
        let mut h = Harness::new(Db::Sqlite).await;
        let binary = describe(Path::new(env!("CARGO_BIN_EXE_mediaflow-llm"))).await.unwrap();
        let sup = Supervisor::new(binary, vec![("MEDIAFLOW_MODELS".into(), models.display().to_string())]);
        h.register(sup.plugins());
        let flow = format!(
            "steps:\n  g: {{ uses: llm.generate, with: {{ model: {MODEL}, raw: true, prompt: {prompt:?}, temperature: 0, max_tokens: {GEN}, threads: {THREADS} }} }}\n"
        );
        let opts = || EngineOptions { no_cache: true, ..EngineOptions::default() };
        h.run_with(&flow, json!({}), opts(), RunControl::default()).await; // warm-up: loads the model
        let (mut tg, mut pp, mut wall) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPS {
            let t = std::time::Instant::now();
            let r = h.run_with(&flow, json!({}), opts(), RunControl::default()).await;
            wall.push(t.elapsed().as_secs_f64());
            let o = &r.steps["g"].outputs;
            assert_eq!(o["completion_tokens"], GEN, "generated the full {GEN} tokens: {o}");
            tg.push(o["tokens_per_s"].as_f64().unwrap());
            pp.push(o["prompt_tokens_per_s"].as_f64().unwrap());
        }
        sup.shutdown().await;
        h.cleanup().await;
        (mean(&tg), mean(&pp), mean(&wall))
    });
    println!("\nllm.generate vs llama.cpp's C API — {MODEL}, {THREADS} threads, {REPS} runs each");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "llama.cpp", "mediaflow", "ratio"
    );
    println!(
        "{:<34} {:>12.1} {:>12.1} {:>7.1}%",
        format!("generation tokens/s (tg{GEN})"),
        ref_tg,
        tg,
        100.0 * tg / ref_tg
    );
    println!(
        "{:<34} {:>12.1} {:>12.1} {:>7.1}%",
        "prompt tokens/s (same prompt)",
        ref_pp,
        pp,
        100.0 * pp / ref_pp
    );
    println!(
        "mediaflow wall time per run (engine + protocol + {GEN} tokens): {:.0} ms",
        wall * 1000.0
    );
}
