//! Sentence embeddings: a BERT-style ONNX encoder (`input_ids`, `attention_mask`, optional
//! `token_type_ids`; token embeddings out), its WordPiece tokenizer, mean pooling over the
//! attention mask and L2 normalisation.
//!
//! A text longer than the model's window is **chunked, not truncated**: its tokens are cut
//! into windows of `max_tokens − 2` (each wrapped in `[CLS] … [SEP]`), every window is
//! embedded, and the text's vector is the token-weighted mean of the windows' vectors,
//! normalised. A 2,000-word article is then represented by all of it, not its first
//! paragraph.

use std::path::Path;

use tokenizers::Tokenizer;
use tract_onnx::prelude::*;

use crate::model::{self, Expect, ModelError, Plan};

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("the text is empty")]
    Empty,
    #[error("the tokenizer failed: {0}")]
    Tokenize(String),
    #[error("{path}: cannot read the tokenizer: {message}")]
    Tokenizer { path: String, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl TextError {
    pub fn code(&self) -> &'static str {
        match self {
            TextError::Empty => "empty_text",
            TextError::Tokenize(_) => "bad_text",
            TextError::Tokenizer { .. } => "bad_model",
            TextError::Model(m) => m.code(),
        }
    }
}

/// The inputs a BERT-style encoder may take, in the model's order.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    Ids,
    Mask,
    TypeIds,
}

pub struct TextModel {
    plan: Plan,
    tokenizer: Tokenizer,
    inputs: Vec<Input>,
    /// Tokens per window, special tokens included.
    pub max_tokens: usize,
    cls: u32,
    sep: u32,
    pad: u32,
}

/// One window of one text: token ids with the special tokens.
pub struct Window {
    pub ids: Vec<u32>,
}

impl TextModel {
    /// Loads the encoder at `path` with the tokenizer at `tokenizer`. `output` names the
    /// token-embeddings output (`[N, S, D]`); without it, the first output of rank 3.
    pub fn load(
        path: &Path,
        tokenizer: &Path,
        output: Option<&str>,
        max_tokens: usize,
    ) -> Result<TextModel, TextError> {
        let mut tok = Tokenizer::from_file(tokenizer).map_err(|e| TextError::Tokenizer {
            path: tokenizer.display().to_string(),
            message: e.to_string(),
        })?;
        // tokenizer.json files often pad and truncate to a fixed length (this one: 128);
        // windows and batch padding are done here, with the attention mask.
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| TextError::Tokenizer {
                path: tokenizer.display().to_string(),
                message: e.to_string(),
            })?;
        let special = |t: &str| {
            tok.token_to_id(t).ok_or_else(|| TextError::Tokenizer {
                path: tokenizer.display().to_string(),
                message: format!(
                    "it has no `{t}` token; text.embed needs a BERT WordPiece tokenizer"
                ),
            })
        };
        let (cls, sep, pad) = (special("[CLS]")?, special("[SEP]")?, special("[PAD]")?);

        let mut m = model::read(path)?;
        let shape_error = |message: String| ModelError::Shape {
            path: path.display().to_string(),
            message,
        };
        let names: Vec<String> = m
            .input_outlets()
            .map(|o| o.to_vec())
            .unwrap_or_default()
            .iter()
            .map(|o| m.node(o.node).name.clone())
            .collect();
        let mut inputs = Vec::new();
        for name in &names {
            inputs.push(match name.as_str() {
                "input_ids" => Input::Ids,
                "attention_mask" => Input::Mask,
                "token_type_ids" => Input::TypeIds,
                other => {
                    return Err(shape_error(format!(
                        "its input `{other}` is not one text.embed feeds (input_ids, attention_mask, token_type_ids)"
                    ))
                    .into())
                }
            });
        }
        if !inputs.contains(&Input::Ids) {
            return Err(shape_error("it has no `input_ids` input".into()).into());
        }
        let sym = model::symbols(&m);
        for ix in 0..names.len() {
            model::check_input(
                &m,
                ix,
                &Expect {
                    name: "text.embed",
                    datum: DatumType::I64,
                    shape: vec![None, None],
                },
                path,
            )?;
            let shape = tvec![sym.batch.to_dim(), sym.sequence.to_dim()];
            model::set_input(&mut m, ix, DatumType::I64, shape, path)?;
        }
        let outputs = model::outputs(&m);
        let chosen = match output {
            Some(name) => name.to_owned(),
            None => outputs
                .iter()
                .find(|(_, rank)| *rank == Some(3))
                .or(outputs.first())
                .map(|(n, _)| n.clone())
                .ok_or_else(|| shape_error("it has no output".into()))?,
        };
        model::select_outputs(&mut m, &[chosen.as_str()], path)?;
        let plan = model::optimise(m, path)?;
        Ok(TextModel {
            plan,
            tokenizer: tok,
            inputs,
            max_tokens: max_tokens.max(3),
            cls,
            sep,
            pad,
        })
    }

    /// The windows of `text` (see the module docs). An empty or blank text is an error.
    pub fn windows(&self, text: &str) -> Result<Vec<Window>, TextError> {
        if text.trim().is_empty() {
            return Err(TextError::Empty);
        }
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TextError::Tokenize(e.to_string()))?;
        let ids = enc.get_ids();
        if ids.is_empty() {
            return Err(TextError::Empty);
        }
        let room = self.max_tokens - 2;
        Ok(ids
            .chunks(room)
            .map(|c| {
                let mut ids = Vec::with_capacity(c.len() + 2);
                ids.push(self.cls);
                ids.extend_from_slice(c);
                ids.push(self.sep);
                Window { ids }
            })
            .collect())
    }

    /// Mean-pooled (not yet normalised) vectors of a batch of windows, padded to the
    /// longest.
    pub fn pool(&self, windows: &[&Window]) -> Result<Vec<Vec<f32>>, ModelError> {
        let n = windows.len();
        let s = windows.iter().map(|w| w.ids.len()).max().unwrap_or(0);
        if n == 0 || s == 0 {
            return Ok(Vec::new());
        }
        let mut ids = vec![i64::from(self.pad); n * s];
        let mut mask = vec![0i64; n * s];
        for (i, w) in windows.iter().enumerate() {
            for (j, id) in w.ids.iter().enumerate() {
                ids[i * s + j] = i64::from(*id);
                mask[i * s + j] = 1;
            }
        }
        let run = |e: TractError| ModelError::Run(model::chain(&e));
        let mut feed = TVec::new();
        for input in &self.inputs {
            let data = match input {
                Input::Ids => ids.clone(),
                Input::Mask => mask.clone(),
                Input::TypeIds => vec![0i64; n * s],
            };
            feed.push(Tensor::from_shape(&[n, s], &data).map_err(run)?.into());
        }
        let out = self.plan.run(feed).map_err(run)?;
        let hidden = out[0].to_plain_array_view::<f32>().map_err(run)?;
        let shape = hidden.shape().to_vec();
        if shape.len() != 3 || shape[0] != n || shape[1] != s {
            return Err(ModelError::Run(format!(
                "the model's output has shape {shape:?}; text.embed needs token embeddings [{n}, {s}, D]"
            )));
        }
        let d = shape[2];
        let flat: Vec<f32> = hidden.iter().copied().collect();
        Ok((0..n)
            .map(|i| {
                let len = windows[i].ids.len();
                let mut v = vec![0f32; d];
                for j in 0..len {
                    let row = &flat[(i * s + j) * d..(i * s + j + 1) * d];
                    for (a, b) in v.iter_mut().zip(row) {
                        *a += b;
                    }
                }
                v.iter_mut().for_each(|x| *x /= len as f32);
                v
            })
            .collect())
    }
}

/// The text's vector from its windows' pooled vectors: their mean weighted by each
/// window's token count (`lengths`), L2-normalised.
pub fn combine(lengths: &[usize], pooled: &[Vec<f32>]) -> Vec<f32> {
    let d = pooled.first().map_or(0, Vec::len);
    let mut v = vec![0f32; d];
    for (len, p) in lengths.iter().zip(pooled) {
        let weight = *len as f32;
        for (a, b) in v.iter_mut().zip(p) {
            *a += weight * b;
        }
    }
    normalise(&mut v);
    v
}

pub use mediaflow_vecmath::normalise;

/// The cosine of the angle between `a` and `b` (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (mediaflow_vecmath::norm(a), mediaflow_vecmath::norm(b));
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        mediaflow_vecmath::dot(a, b) / (na * nb)
    }
}
