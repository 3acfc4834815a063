//! `image.classify`: any ONNX image classifier, its preprocessing declared as data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use serde::{Deserialize, Serialize};

use crate::image::{self, Preprocess};
use crate::runtime::{image_error, Runtime};

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
    /// The class names, in the model's output order (default: the catalog's).
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
            .max_concurrency(16),
            runtime,
        }
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

fn labels(
    settings: &ClassifySettings,
    catalog: &serde_json::Value,
    count: usize,
) -> Result<Vec<String>, PluginError> {
    let labels: Vec<String> = match &settings.labels {
        Some(l) => l.clone(),
        None => match catalog.get("labels").and_then(|l| l.as_array()) {
            Some(l) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
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
            .image_model(resolved.path, prep.clone())
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
        let names = labels(&settings, &resolved.settings, probs.len())?;
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
        let mut ranked: Vec<Scored> = names
            .into_iter()
            .zip(&probs)
            .map(|(label, p)| Scored {
                label,
                score: f64::from(*p),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        ranked.truncate(settings.top_k.max(1));
        let best = ranked[0].clone();
        Ok(Classified {
            label: best.label,
            score: best.score,
            scores: ranked.iter().map(|s| (s.label.clone(), s.score)).collect(),
            top: ranked,
            flagged: !flags.is_empty(),
            flags,
            name: artifact.name.clone(),
            width,
            height,
        })
    }
}
