//! CTranslate2 Whisper variables → whisper.cpp tensors.
//!
//! whisper.cpp reads each tensor at the type it expects, whatever type the file says, so a
//! mistake here corrupts the model silently:
//! - CT2 fuses self-attention Q/K/V (`self_attention/linear_0`, split by rows; whisper.cpp
//!   has no key bias, and CT2's is zero) and cross-attention K/V (`attention/linear_1`);
//! - conv biases are shaped (d, 1); which tensors are f32, f16 or the weight type is
//!   `write::tensor_type`'s to say.

use std::collections::BTreeMap;

use crate::ct2::{Var, DT_F16, DT_F32};
use crate::Error;

/// One tensor for the ggml file.
pub(crate) struct Tensor {
    pub(crate) name: String,
    /// Outermost first (PyTorch order).
    pub(crate) shape: Vec<usize>,
    pub(crate) values: Vec<f32>,
}

fn rows(v: &[f32], width: usize, from: usize, to: usize) -> Vec<f32> {
    v[from * width..to * width].to_vec()
}

/// The whisper.cpp tensors of a CT2 model, in a deterministic order.
pub(crate) fn tensors(vars: &BTreeMap<String, Var>, path: &str) -> Result<Vec<Tensor>, Error> {
    let get = |n: &str| {
        vars.get(n).ok_or_else(|| Error::Format {
            path: path.to_owned(),
            reason: format!("variable `{n}` is missing"),
        })
    };
    for (name, v) in vars {
        if v.dims.len() > 1 && v.dtype != DT_F16 && v.dtype != DT_F32 {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: format!(
                    "`{name}` is quantized (type {}); only float16/float32 models convert",
                    v.dtype
                ),
            });
        }
    }
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        out.push(Tensor {
            name,
            shape,
            values,
        });
    };
    let plain = |n: &str| -> Result<(Vec<usize>, Vec<f32>), Error> {
        let v = get(n)?;
        Ok((v.dims.clone(), v.as_f32()))
    };
    let simple = |ct2: &str,
                  ggml: String,
                  push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), Error> {
        let (shape, values) = plain(ct2)?;
        push(ggml, shape, values);
        Ok(())
    };
    let layers = |prefix: &str| {
        (0..)
            .take_while(|i| {
                vars.keys()
                    .any(|k| k.starts_with(&format!("{prefix}/layer_{i}/")))
            })
            .count()
    };
    let (enc_layers, dec_layers) = (layers("encoder"), layers("decoder"));
    if enc_layers == 0 || dec_layers == 0 {
        return Err(Error::Format {
            path: path.to_owned(),
            reason: "no encoder or decoder layers".to_owned(),
        });
    }

    // Encoder stem.
    for conv in ["conv1", "conv2"] {
        simple(
            &format!("encoder/{conv}/weight"),
            format!("encoder.{conv}.weight"),
            &mut push,
        )?;
        let (shape, values) = plain(&format!("encoder/{conv}/bias"))?;
        push(format!("encoder.{conv}.bias"), vec![shape[0], 1], values);
    }
    simple(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding".into(),
        &mut push,
    )?;

    // Splits a fused projection by rows into named parts (`None` parts are dropped).
    let fused = |ct2: &str,
                 parts: &[Option<String>],
                 bias_parts: &[Option<String>],
                 push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), Error> {
        let (shape, w) = plain(&format!("{ct2}/weight"))?;
        let (_, b) = plain(&format!("{ct2}/bias"))?;
        let d = shape[0] / parts.len();
        let width = shape[1];
        for (k, name) in parts.iter().enumerate() {
            if let Some(name) = name {
                push(
                    format!("{name}.weight"),
                    vec![d, width],
                    rows(&w, width, k * d, (k + 1) * d),
                );
            }
        }
        for (k, name) in bias_parts.iter().enumerate() {
            if let Some(name) = name {
                push(
                    format!("{name}.bias"),
                    vec![d],
                    b[k * d..(k + 1) * d].to_vec(),
                );
            }
        }
        Ok(())
    };
    let linear = |ct2: &str,
                  name: &str,
                  push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), Error> {
        let (ws, w) = plain(&format!("{ct2}/weight"))?;
        push(format!("{name}.weight"), ws, w);
        let (bs, b) = plain(&format!("{ct2}/bias"))?;
        push(format!("{name}.bias"), bs, b);
        Ok(())
    };
    let norm = |ct2: &str,
                name: &str,
                push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), Error> {
        let (gs, g) = plain(&format!("{ct2}/gamma"))?;
        push(format!("{name}.weight"), gs, g);
        let (bs, b) = plain(&format!("{ct2}/beta"))?;
        push(format!("{name}.bias"), bs, b);
        Ok(())
    };
    let qkv = |p: &str| {
        [
            Some(format!("{p}.query")),
            Some(format!("{p}.key")),
            Some(format!("{p}.value")),
        ]
    };
    let qkv_bias = |p: &str| [Some(format!("{p}.query")), None, Some(format!("{p}.value"))];

    // The blocks encoder and decoder layers share.
    let self_attention = |c: &str, g: &str, push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        norm(
            &format!("{c}/self_attention/layer_norm"),
            &format!("{g}.attn_ln"),
            push,
        )?;
        fused(
            &format!("{c}/self_attention/linear_0"),
            &qkv(&format!("{g}.attn")),
            &qkv_bias(&format!("{g}.attn")),
            push,
        )?;
        linear(
            &format!("{c}/self_attention/linear_1"),
            &format!("{g}.attn.out"),
            push,
        )
    };
    let feed_forward = |c: &str, g: &str, push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        norm(&format!("{c}/ffn/layer_norm"), &format!("{g}.mlp_ln"), push)?;
        linear(&format!("{c}/ffn/linear_0"), &format!("{g}.mlp.0"), push)?;
        linear(&format!("{c}/ffn/linear_1"), &format!("{g}.mlp.2"), push)
    };

    for i in 0..enc_layers {
        let (c, g) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        self_attention(&c, &g, &mut push)?;
        feed_forward(&c, &g, &mut push)?;
    }
    norm("encoder/layer_norm", "encoder.ln_post", &mut push)?;

    simple(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight".into(),
        &mut push,
    )?;
    simple(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding".into(),
        &mut push,
    )?;
    for i in 0..dec_layers {
        let (c, g) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        self_attention(&c, &g, &mut push)?;
        norm(
            &format!("{c}/attention/layer_norm"),
            &format!("{g}.cross_attn_ln"),
            &mut push,
        )?;
        linear(
            &format!("{c}/attention/linear_0"),
            &format!("{g}.cross_attn.query"),
            &mut push,
        )?;
        fused(
            &format!("{c}/attention/linear_1"),
            &[
                Some(format!("{g}.cross_attn.key")),
                Some(format!("{g}.cross_attn.value")),
            ],
            &[None, Some(format!("{g}.cross_attn.value"))],
            &mut push,
        )?;
        linear(
            &format!("{c}/attention/linear_2"),
            &format!("{g}.cross_attn.out"),
            &mut push,
        )?;
        feed_forward(&c, &g, &mut push)?;
    }
    norm("decoder/layer_norm", "decoder.ln", &mut push)?;
    Ok(out)
}
