//! `image.classify` and `text.embed` models on tract against onnxruntime, side by side in one
//! run: the same model files, the same input tensors, one thread each (tract runs single
//! threaded here; onnxruntime gets `intra_op_num_threads = 1`). Per-item latency and items/s
//! at batch 1 and batch 8/32; medians of 10 runs after a warm-up. onnxruntime runs in the
//! reference venv (`scripts/reference-venv.sh`, bench/test-only).
//!
//! `cargo bench --profile dev --workspace --bench onnx` needs `mediaflow models pull
//! open-nsfw efficientnet-lite0 minilm-l6 minilm-l3`.

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{padded, reference, store};

use mediaflow_onnx::classify::ImageModel;
use mediaflow_onnx::embed::{TextModel, Window};
use mediaflow_onnx::image::{Layout, Preprocess};
use serde_json::{json, Value};

const RUNS: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

fn ort_ms(v: &Value) -> f64 {
    median(
        v["ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
    )
}

fn row(what: &str, batch: usize, tract_ms: f64, ort_ms: f64) {
    let (t, o) = (tract_ms / batch as f64, ort_ms / batch as f64);
    println!(
        "{what:<28} batch {batch:>2}: tract {t:>7.2} ms/item ({:>6.1}/s)   onnxruntime {o:>7.2} ms/item ({:>6.1}/s)   tract/ort {:.2}×",
        1000.0 / t,
        1000.0 / o,
        t / o
    );
}

fn main() {
    let s = store();
    for name in ["open-nsfw", "efficientnet-lite0"] {
        let path = s
            .resolve(name)
            .unwrap_or_else(|_| panic!("mediaflow models pull {name}"));
        let prep: Preprocess =
            serde_json::from_value(s.settings(name)["preprocess"].clone()).unwrap();
        let shape = match prep.layout {
            Layout::Nhwc => [224, 224, 3],
            Layout::Nchw => [3, 224, 224],
        };
        let m = ImageModel::load(&path, prep).unwrap();
        for batch in [1usize, 8] {
            let images: Vec<Vec<f32>> = (0..batch)
                .map(|i| vec![(i as f32) - 50.0; 224 * 224 * 3])
                .collect();
            let tract = time(|| {
                m.run(&images).unwrap();
            });
            let ort = reference(
                json!({"op": "bench_image", "model": path, "shape": [batch, shape[0], shape[1], shape[2]], "runs": RUNS, "threads": 1}),
            );
            row(name, batch, tract, ort_ms(&ort));
        }
    }

    let sentences = [
        "The city council approved a new bridge across the river on Tuesday night.",
        "Critics said the money should have been spent on flood protection instead.",
        "Train drivers will strike on Friday after talks over pay broke down, the union said.",
        "A local bakery has won the regional award for the best sourdough loaf for the third year running.",
    ];
    let tokenizer = s.companion("minilm-l6", "tokenizer").unwrap().unwrap();
    for name in ["minilm-l6", "minilm-l3"] {
        let path = s
            .resolve(name)
            .unwrap_or_else(|_| panic!("mediaflow models pull {name}"));
        let settings = s.settings(name);
        let output = settings["output"].as_str().unwrap().to_owned();
        let m = TextModel::load(&path, &tokenizer, Some(&output), 128).unwrap();
        for batch in [1usize, 32] {
            let windows: Vec<Window> = (0..batch)
                .map(|i| m.windows(sentences[i % sentences.len()]).unwrap().remove(0))
                .collect();
            let refs: Vec<&Window> = windows.iter().collect();
            let tract = time(|| {
                m.pool(&refs).unwrap();
            });
            let (ids, mask) = padded(&windows);
            let ort = reference(
                json!({"op": "bench_text", "model": path, "ids": ids, "mask": mask, "output": output, "runs": RUNS, "threads": 1}),
            );
            row(name, batch, tract, ort_ms(&ort));
        }
    }
}
