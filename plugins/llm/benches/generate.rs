//! Generation speed of `llm.generate` (engine → process protocol → llama.cpp) against
//! llama.cpp's own `llama-bench`, built from the very llama.cpp sources the `llama-cpp-sys-2`
//! crate vendors, on the same GGUF, threads and token counts, side by side in one run.
//!
//! `cargo bench -p mediaflow-llm --bench generate` (needs `mediaflow models pull
//! smollm2-135m-instruct`; the first run builds llama-bench with cmake, ~3 min).

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

fn llama_bench() -> PathBuf {
    let src = vendored_llama_cpp()
        .expect("llama-cpp-sys-2 0.1.160 sources in the cargo registry (cargo fetch)");
    let build = target_dir().join("llama-bench-reference");
    let bin = build.join("bin/llama-bench");
    if bin.is_file() {
        return bin;
    }
    eprintln!("building llama-bench from {} (once)…", src.display());
    let ok = Command::new("cmake")
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=OFF",
            "-DLLAMA_BUILD_TOOLS=ON",
            "-DBUILD_SHARED_LIBS=OFF",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Command::new("cmake")
            .arg("--build")
            .arg(&build)
            .args(["--target", "llama-bench", "-j", "2"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(ok && bin.is_file(), "could not build llama-bench");
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

    // llama.cpp's reference: prompt processing of 64 tokens and generation of 128.
    let bench = llama_bench();
    let out = Command::new(&bench)
        .arg("-m")
        .arg(&model)
        .args([
            "-p",
            "64",
            "-n",
            &GEN.to_string(),
            "-t",
            &THREADS.to_string(),
            "-r",
            &REPS.to_string(),
            "-o",
            "json",
        ])
        .output()
        .expect("llama-bench runs");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "llama-bench output: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let pick = |pp: u64, tg: u64| {
        rows.as_array()
            .into_iter()
            .flatten()
            .find(|r| r["n_prompt"] == pp && r["n_gen"] == tg)
            .and_then(|r| r["avg_ts"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let (ref_pp, ref_tg) = (pick(64, 0), pick(0, GEN as u64));

    // mediaflow: the same model and threads, greedy, through the engine and the protocol.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tg, pp, wall) = rt.block_on(async {
        let mut h = Harness::new(Db::Sqlite).await;
        let binary = describe(Path::new(env!("CARGO_BIN_EXE_mediaflow-llm"))).await.unwrap();
        let sup = Supervisor::new(binary, vec![("MEDIAFLOW_MODELS".into(), models.display().to_string())]);
        for p in sup.plugins() {
            h.registry.register(p);
        }
        let prompt = "The history of the city begins in Roman times, when a fort was built on the river. ".repeat(4);
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
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        (mean(&tg), mean(&pp), mean(&wall))
    });
    println!(
        "\nllm.generate vs llama.cpp llama-bench — {MODEL}, {THREADS} threads, {REPS} runs each"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "llama-bench", "mediaflow", "ratio"
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
        "prompt tokens/s (pp64 / ~80)",
        ref_pp,
        pp,
        100.0 * pp / ref_pp
    );
    println!(
        "mediaflow wall time per run (engine + protocol + {GEN} tokens): {:.0} ms",
        wall * 1000.0
    );
}
