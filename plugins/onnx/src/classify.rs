//! Image classifiers: an ONNX model with one float image input (`[N, H, W, 3]` or
//! `[N, 3, H, W]`) and class scores out, run on batches of preprocessed images.

use std::path::Path;

use tract_onnx::prelude::*;

use crate::image::{Layout, Preprocess};
use crate::model::{self, Expect, ModelError, Plan};

pub struct ImageModel {
    pub plan: Plan,
    pub prep: Preprocess,
    /// The file's sha256 prefix, for logs and reports.
    pub name: String,
}

impl ImageModel {
    /// Loads `path` for images prepared by `prep`, checking that the model takes one
    /// float tensor of that shape.
    pub fn load(path: &Path, prep: Preprocess) -> Result<ImageModel, ModelError> {
        let mut m = model::read(path)?;
        let inputs = m.input_outlets().map(|o| o.len()).unwrap_or(0);
        if inputs != 1 {
            return Err(ModelError::Shape {
                path: path.display().to_string(),
                message: format!("it has {inputs} inputs; image.classify feeds one image tensor"),
            });
        }
        let size = prep.output_size();
        let (h, w) = (size.height as usize, size.width as usize);
        let want = match prep.layout {
            Layout::Nhwc => vec![None, Some(h), Some(w), Some(3)],
            Layout::Nchw => vec![None, Some(3), Some(h), Some(w)],
        };
        model::check_input(
            &m,
            0,
            &Expect {
                name: "image.classify",
                datum: DatumType::F32,
                shape: want,
            },
            path,
        )?;
        let first = model::outputs(&m)
            .into_iter()
            .next()
            .map(|(name, _)| name)
            .ok_or_else(|| ModelError::Shape {
                path: path.display().to_string(),
                message: "it has no output".into(),
            })?;
        model::select_outputs(&mut m, &[first.as_str()], path)?;
        // One image a call, with every dimension known. tract's fast convolutions (its
        // depthwise kernel, lazy im2col, direct and blocked convolutions) need a concrete
        // input shape, and lazy im2col a batch of one; with a symbolic batch size every
        // convolution fell back to im2col + matmul, which made EfficientNet-Lite0 five times
        // slower (279 against 55 ms an image, `benches/onnx.rs`). Batches run image by image
        // on this plan; the batching workers still group a `for_each`'s calls by model.
        let shape: TVec<TDim> = match prep.layout {
            Layout::Nhwc => tvec![1.to_dim(), h.to_dim(), w.to_dim(), 3.to_dim()],
            Layout::Nchw => tvec![1.to_dim(), 3.to_dim(), h.to_dim(), w.to_dim()],
        };
        model::force_input(&mut m, 0, DatumType::F32, shape, path)?;
        let plan = model::optimise(m, path)?;
        Ok(ImageModel {
            plan,
            prep,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// Class probabilities for a batch of prepared images (each as [`crate::image::prepare`]
    /// made it). Logits are turned into probabilities with a softmax; outputs that already
    /// are probabilities (non-negative, summing to 1) are kept.
    pub fn run(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        if images.len() != 1 {
            let mut out = Vec::with_capacity(images.len());
            for img in images {
                out.extend(self.run(std::slice::from_ref(img))?);
            }
            return Ok(out);
        }
        let size = self.prep.output_size();
        let (h, w) = (size.height as usize, size.width as usize);
        let shape = match self.prep.layout {
            Layout::Nhwc => [images.len(), h, w, 3],
            Layout::Nchw => [images.len(), 3, h, w],
        };
        let mut data = Vec::with_capacity(images.len() * h * w * 3);
        for img in images {
            if img.len() != h * w * 3 {
                return Err(ModelError::Run(format!(
                    "a prepared image has {} values, not {}",
                    img.len(),
                    h * w * 3
                )));
            }
            data.extend_from_slice(img);
        }
        let input =
            Tensor::from_shape(&shape, &data).map_err(|e| ModelError::Run(model::chain(&e)))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| ModelError::Run(model::chain(&e)))?;
        let scores = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Run(model::chain(&e)))?;
        let per = scores.len() / images.len().max(1);
        if per == 0 || scores.len() != per * images.len() {
            return Err(ModelError::Run(format!(
                "the model's output has shape {:?} for {} images",
                scores.shape(),
                images.len()
            )));
        }
        let flat: Vec<f32> = scores.iter().copied().collect();
        Ok(flat.chunks(per).map(probabilities).collect())
    }
}

/// `row` as probabilities: kept if it already is one, else its softmax.
pub fn probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() < 1e-3 {
        return row.to_vec();
    }
    softmax(row)
}

pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_kept_and_logits_softmaxed() {
        assert_eq!(probabilities(&[0.25, 0.75]), vec![0.25, 0.75]);
        let p = probabilities(&[2.0, 0.0, -1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[1] && p[1] > p[2]);
        assert!((p[0] - 0.843_794_3).abs() < 1e-5, "{p:?}");
    }
}
