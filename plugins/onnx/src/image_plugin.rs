//! `image.classify`: any ONNX image classifier, its preprocessing declared as data.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use serde::{Deserialize, Serialize};

use crate::image::{self, Preprocess};
use crate::runtime::{image_error, Resolved, Runtime};

/// `image.classify`'s settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifySettings {
    /// The image: PNG, JPEG (its EXIF orientation is applied), WebP, GIF (first frame),
    /// BMP or TIFF.
    pub image: Option<ArtifactRef>,
    /// An ONNX image classifier: a catalog name (`open-nsfw`) or a path.
    pub model: String,
    /// How many of the best labels to return.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// The class names, in the model's output order (default: the catalog's, or the
    /// model's `labels` companion file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// How an image becomes the model's input (default: the catalog's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
    /// Flag the image when a label's probability reaches its threshold, e.g.
    /// `flag: { nsfw: 0.8 }` (any label, not only the top-k).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flag: BTreeMap<String, f64>,
}

fn default_top_k() -> usize {
    5
}

/// One label and its probability.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Scored {
    pub label: String,
    pub score: f64,
}

/// The outputs of `image.classify`.
#[derive(Serialize, JsonSchema)]
pub struct Classified {
    /// The most likely label.
    pub label: String,
    /// Its probability.
    pub score: f64,
    /// The `top_k` best labels, best first.
    pub top: Vec<Scored>,
    /// The `top_k` best labels' probabilities by label (`scores.nsfw`).
    pub scores: BTreeMap<String, f64>,
    /// Whether a `flag:` threshold was reached.
    pub flagged: bool,
    /// The labels whose `flag:` threshold was reached.
    pub flags: Vec<String>,
    /// The image's file name, if it has one.
    pub name: Option<String>,
    /// The image's size as decoded (after its EXIF orientation), pixels.
    pub width: u32,
    pub height: u32,
}

pub struct ClassifyImage {
    descriptor: Descriptor,
    runtime: Arc<Runtime>,
    /// Label files (`labels` companions) read so far, by path: read once, not per image.
    label_files: Mutex<HashMap<PathBuf, Arc<[String]>>>,
}

impl ClassifyImage {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        ClassifyImage {
            descriptor: Descriptor::from_config::<ClassifySettings>(
                "image.classify",
                "1.0.0",
                "Classify an image with an ONNX model (tract): top-k labels with probabilities",
            )
            .inputs(["image"])
            .outputs_from::<Classified>()
            .max_concurrency(16)
            .batches(),
            runtime,
            label_files: Mutex::default(),
        }
    }

    /// The class names: the step's, the catalog settings', the model's `labels` companion
    /// (a JSON array of strings), or `class_0`, `class_1`, … — one per score.
    fn labels(
        &self,
        settings: &ClassifySettings,
        resolved: &Resolved,
        count: usize,
    ) -> Result<Arc<[String]>, PluginError> {
        let catalog = resolved.settings.get("labels").and_then(|l| l.as_array());
        let labels: Arc<[String]> = match (&settings.labels, catalog) {
            (Some(l), _) => l.as_slice().into(),
            (None, Some(l)) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            (None, None) => match resolved.store.companion(&settings.model, "labels")? {
                Some(path) => self.label_file(&path)?,
                None => (0..count).map(|i| format!("class_{i}")).collect(),
            },
        };
        if labels.len() != count {
            return Err(PluginError::new(
                "wrong_labels",
                format!(
                    "the model scores {count} classes but {} labels are given",
                    labels.len()
                ),
            ));
        }
        Ok(labels)
    }

    /// A `labels` companion, read the first time it is needed.
    fn label_file(&self, path: &Path) -> Result<Arc<[String]>, PluginError> {
        let mut files = self
            .label_files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(l) = files.get(path) {
            return Ok(l.clone());
        }
        let bytes = std::fs::read(path).map_err(|e| {
            PluginError::new(
                "bad_model",
                format!("the labels file {}: {e}", path.display()),
            )
        })?;
        let labels: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| {
            PluginError::new(
                "bad_model",
                format!(
                    "the labels file {} is not a JSON array of strings: {e}",
                    path.display()
                ),
            )
        })?;
        let labels: Arc<[String]> = labels.into();
        files.insert(path.to_owned(), labels.clone());
        Ok(labels)
    }
}

fn settings_preprocess(
    settings: &ClassifySettings,
    catalog: &serde_json::Value,
) -> Result<Preprocess, PluginError> {
    if let Some(p) = &settings.preprocess {
        return Ok(p.clone());
    }
    match catalog.get("preprocess") {
        Some(p) => serde_json::from_value(p.clone()).map_err(|e| {
            PluginError::new(
                "bad_model",
                format!("the catalog's preprocessing for `{}` is invalid: {e}", settings.model),
            )
        }),
        None => Err(PluginError::new(
            "bad_config",
            format!("`{}` has no preprocessing in the catalog; give `preprocess:`", settings.model),
        )
        .with_help("e.g. preprocess: { resize: { width: 224, height: 224 }, scale: 0.003921569, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: nchw }")),
    }
}

#[async_trait::async_trait]
impl TypedPlugin for ClassifyImage {
    type Config = ClassifySettings;
    type Output = Classified;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, settings: &ClassifySettings) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (label, t) in &settings.flag {
            if !(0.0..=1.0).contains(t) {
                issues.push(ConfigIssue::new(
                    &format!("/flag/{label}"),
                    format!("the threshold {t} is not a probability (0–1)"),
                ));
            }
        }
        if settings.top_k == 0 {
            issues.push(ConfigIssue::new("/top_k", "top_k must be at least 1"));
        }
        if let Some(p) = &settings.preprocess {
            if let Err(e) = p.check() {
                issues.push(ConfigIssue::new("/preprocess", e));
            }
        }
        issues
    }

    async fn run(
        &self,
        settings: ClassifySettings,
        cx: &RunContext,
    ) -> Result<Classified, PluginError> {
        let artifact = settings
            .image
            .clone()
            .ok_or_else(|| PluginError::new("bad_config", "`image` is not a file"))?;
        let resolved = Runtime::resolve(&settings.model)?;
        let prep = settings_preprocess(&settings, &resolved.settings)?;
        let path = cx.artifact_path(&artifact).await?;
        let label = match &artifact.name {
            Some(name) => name.clone(),
            None => format!(
                "artifact {}",
                &artifact.sha256[..12.min(artifact.sha256.len())]
            ),
        };
        let model = self
            .runtime
            .image_model(resolved.path.clone(), prep.clone())
            .await?;
        let decode_prep = prep.clone();
        let (input, width, height) = tokio::task::spawn_blocking(move || {
            let img = image::decode(Path::new(&path), &label)?;
            let mut input = Vec::new();
            image::prepare(&img, &decode_prep, &mut input)?;
            Ok::<_, image::ImageError>((input, img.width(), img.height()))
        })
        .await
        .map_err(|e| PluginError::new("panic", format!("decoding the image failed: {e}")))?
        .map_err(image_error)?;
        let probs = self.runtime.classify(&model, input).await?;
        let names = self.labels(&settings, &resolved, probs.len())?;
        let mut flags = Vec::new();
        for (label, threshold) in &settings.flag {
            let Some(i) = names.iter().position(|n| n == label) else {
                return Err(PluginError::new(
                    "bad_config",
                    format!(
                        "`flag` names `{label}`, which is not one of the model's labels ({})",
                        names.join(", ")
                    ),
                ));
            };
            if f64::from(probs[i]) >= *threshold {
                flags.push(label.clone());
            }
        }
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        order.truncate(settings.top_k.max(1));
        let ranked: Vec<Scored> = order
            .into_iter()
            .map(|i| Scored {
                label: names[i].clone(),
                score: f64::from(probs[i]),
            })
            .collect();
        let best = ranked[0].clone();
        // A name the label list repeats (ImageNet's two `missile`s) keeps its best score.
        let mut scores = BTreeMap::new();
        for s in &ranked {
            scores.entry(s.label.clone()).or_insert(s.score);
        }
        Ok(Classified {
            label: best.label,
            score: best.score,
            scores,
            top: ranked,
            flagged: !flags.is_empty(),
            flags,
            name: artifact.name.clone(),
            width,
            height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labels_companion_is_read_once_and_must_be_a_string_array() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = ClassifyImage::new(Runtime::new());
        let good = dir.path().join("labels.json");
        std::fs::write(&good, r#"["tench", "goldfish"]"#).unwrap();
        assert_eq!(&*plugin.label_file(&good).unwrap(), ["tench", "goldfish"]);
        std::fs::write(&good, "changed").unwrap();
        assert_eq!(
            &*plugin.label_file(&good).unwrap(),
            ["tench", "goldfish"],
            "read once, not per image"
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"0": "tench"}"#).unwrap();
        let e = plugin.label_file(&bad).unwrap_err();
        assert_eq!(e.code, "bad_model");
        assert!(
            e.message.contains(&bad.display().to_string())
                && e.message.contains("not a JSON array of strings"),
            "{}",
            e.message
        );
        let missing = dir.path().join("missing.json");
        let e = plugin.label_file(&missing).unwrap_err();
        assert!(
            e.message.contains(&missing.display().to_string()),
            "{}",
            e.message
        );
    }
}
