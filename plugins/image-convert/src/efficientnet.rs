//! EfficientNet-Lite0 as an ONNX graph, from the state dict of an `efficientnet_pytorch`-style
//! model (`_conv_stem`, `_blocks.N._expand_conv` / `_depthwise_conv` / `_project_conv`,
//! `_conv_head`, `_fc`, each conv followed by its BatchNorm).
//!
//! Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 for swish and the
//! stem and head kept at 32 and 1280 channels. Every BatchNorm (eps 1e-3, TensorFlow's) is
//! folded into the conv before it, so the graph is only Conv, Clip (ReLU6), Add, the pooled
//! head (GlobalAveragePool, Flatten, Gemm) and a Softmax: image.classify wants
//! probabilities.

use crate::onnx::{Attr, Dim, Graph, Initializer, Io, Node};
use crate::torch::{Checkpoint, CheckpointError};

/// The input is fixed at 224 × 224, so every conv's padding is computed here.
pub const INPUT_SIZE: usize = 224;
pub const CLASSES: usize = 1000;
const STEM: usize = 32;
const HEAD: usize = 1280;
/// TensorFlow's BatchNorm epsilon, which these (TF-trained) weights were trained with.
const BN_EPS: f64 = 1e-3;

/// A stage: (expansion, kernel, stride of its first block, output channels, blocks).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

/// How convs pad their input.
///
/// The weights were trained in TensorFlow with `padding="SAME"`, which pads a stride-2
/// conv asymmetrically (the extra row and column go after); PyTorch ports usually pad
/// `(k − 1) / 2` on both sides instead, which shifts every stride-2 conv's sampling grid by
/// one pixel. Measured with onnxruntime on seven photos from scikit-image's data (chelsea,
/// coffee, rocket, motorcycle_left, motorcycle_right, camera, clock_motion), each also
/// mirrored, as the probability the model gives the photo's ImageNet classes (the cats,
/// espresso/cup/mug, missile/projectile/space shuttle, moped/scooter, tripod/reflex camera,
/// wall/analog clock): SAME gives more in 12 of the 14 (coffee 0.973 vs 0.952, camera 0.948
/// vs 0.919, motorcycle_left mirrored 0.667 vs 0.513), a mean log-probability of −0.71 vs
/// −0.87. So the converter uses [`Padding::TfSame`]; `Symmetric` is kept for that
/// comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    TfSame,
    Symmetric,
}

impl Padding {
    /// The padding (before, after) of one spatial axis of size `input`.
    pub fn pads(self, input: usize, kernel: usize, stride: usize) -> (usize, usize) {
        match self {
            Padding::Symmetric => ((kernel - 1) / 2, (kernel - 1) / 2),
            Padding::TfSame => {
                let out = input.div_ceil(stride);
                let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(input);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// A BatchNorm's parameters, one value per channel.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// Folds `bn` into the conv weight before it (`[out, …]`, row-major): per output channel,
/// `w' = w·γ/√(σ² + ε)` and the bias `b' = β − μ·γ/√(σ² + ε)`, so that
/// `conv(x, w') + b' = BN(conv(x, w))`. Computed in f64, stored as f32.
pub fn fold_batch_norm(weight: &[f32], bn: &BatchNorm, eps: f64) -> (Vec<f32>, Vec<f32>) {
    let out = bn.gamma.len();
    let per = weight.len() / out.max(1);
    let mut w = Vec::with_capacity(weight.len());
    let mut b = Vec::with_capacity(out);
    for c in 0..out {
        let scale = f64::from(bn.gamma[c]) / (f64::from(bn.var[c]) + eps).sqrt();
        w.extend(
            weight[c * per..(c + 1) * per]
                .iter()
                .map(|&x| (f64::from(x) * scale) as f32),
        );
        b.push((f64::from(bn.beta[c]) - f64::from(bn.mean[c]) * scale) as f32);
    }
    (w, b)
}

/// What a conv is: torch's weight and BatchNorm names, its output and kernel, stride, groups.
struct Conv<'n> {
    weight: String,
    bn: String,
    name: &'n str,
    shape: [usize; 4],
    stride: usize,
    groups: usize,
    relu6: bool,
}

struct Builder<'a> {
    checkpoint: &'a Checkpoint,
    padding: Padding,
    graph: Graph,
    /// The tensors read so far.
    used: Vec<String>,
    /// The current feature map's height (= width).
    size: usize,
}

impl Builder<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let t = self.checkpoint.tensor_shaped(name, shape)?;
        self.used.push(name.to_owned());
        Ok(t.data)
    }

    fn batch_norm(&mut self, prefix: &str, channels: usize) -> Result<BatchNorm, CheckpointError> {
        let mut get = |what: &str| self.tensor(&format!("{prefix}.{what}"), &[channels]);
        Ok(BatchNorm {
            gamma: get("weight")?,
            beta: get("bias")?,
            mean: get("running_mean")?,
            var: get("running_var")?,
        })
    }

    fn node(
        &mut self,
        op: &'static str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&'static str, Attr)>,
    ) {
        self.graph.nodes.push(Node {
            op,
            name: name.to_owned(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            outputs: vec![name.to_owned()],
            attrs,
        });
    }

    fn initializer(&mut self, name: String, dims: Vec<usize>, data: Vec<f32>) {
        self.graph
            .initializers
            .push(Initializer { name, dims, data });
    }

    /// A conv with its BatchNorm folded in (and ReLU6 after it if `relu6`); its output.
    fn conv(&mut self, x: &str, c: Conv) -> Result<String, CheckpointError> {
        let [_, _, k, _] = c.shape;
        let weight = self.tensor(&c.weight, &c.shape)?;
        let bn = self.batch_norm(&c.bn, c.shape[0])?;
        let (w, b) = fold_batch_norm(&weight, &bn, BN_EPS);
        let (w_name, b_name) = (format!("{}.weight", c.name), format!("{}.bias", c.name));
        self.initializer(w_name.clone(), c.shape.to_vec(), w);
        self.initializer(b_name.clone(), vec![c.shape[0]], b);
        let (before, after) = self.padding.pads(self.size, k, c.stride);
        let (k, s, b, a) = (k as i64, c.stride as i64, before as i64, after as i64);
        self.node(
            "Conv",
            c.name,
            &[x, &w_name, &b_name],
            vec![
                ("group", Attr::Int(c.groups as i64)),
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("pads", Attr::Ints(vec![b, b, a, a])),
                ("strides", Attr::Ints(vec![s, s])),
            ],
        );
        self.size = (self.size + before + after - c.shape[2]) / c.stride + 1;
        if !c.relu6 {
            return Ok(c.name.to_owned());
        }
        let out = format!("{}.relu6", c.name);
        self.node("Clip", &out, &[c.name, "relu6.min", "relu6.max"], vec![]);
        Ok(out)
    }

    /// One MBConv block (expand 1×1, depthwise k×k, project 1×1, residual when it fits).
    fn block(
        &mut self,
        x: &str,
        i: usize,
        cin: usize,
        stage: (usize, usize, usize, usize),
        first: bool,
    ) -> Result<String, CheckpointError> {
        let (expand, k, stride, cout) = stage;
        let stride = if first { stride } else { 1 };
        let p = format!("_blocks.{i}");
        let mid = cin * expand;
        let mut h = x.to_owned();
        if expand != 1 {
            let name = format!("blocks.{i}.expand");
            h = self.conv(
                &h,
                Conv {
                    weight: format!("{p}._expand_conv.weight"),
                    bn: format!("{p}._bn0"),
                    name: &name,
                    shape: [mid, cin, 1, 1],
                    stride: 1,
                    groups: 1,
                    relu6: true,
                },
            )?;
        }
        let name = format!("blocks.{i}.depthwise");
        h = self.conv(
            &h,
            Conv {
                weight: format!("{p}._depthwise_conv.weight"),
                bn: format!("{p}._bn1"),
                name: &name,
                shape: [mid, 1, k, k],
                stride,
                groups: mid,
                relu6: true,
            },
        )?;
        let name = format!("blocks.{i}.project");
        h = self.conv(
            &h,
            Conv {
                weight: format!("{p}._project_conv.weight"),
                bn: format!("{p}._bn2"),
                name: &name,
                shape: [cout, mid, 1, 1],
                stride: 1,
                groups: 1,
                relu6: false,
            },
        )?;
        if stride == 1 && cin == cout {
            let name = format!("blocks.{i}.add");
            self.node("Add", &name, &[&h, x], vec![]);
            h = name;
        }
        Ok(h)
    }
}

/// The EfficientNet-Lite0 graph for the weights in `checkpoint`: input `input`
/// `[N, 3, 224, 224]` (RGB, `(pixel − 127) / 128`), output `probabilities` `[N, 1000]`.
/// Every float tensor of the checkpoint must be used, so another model's weights (one with
/// squeeze-and-excitation, another width) are refused instead of half read.
pub fn build(checkpoint: &Checkpoint, padding: Padding) -> Result<Graph, CheckpointError> {
    let mut b = Builder {
        checkpoint,
        padding,
        graph: Graph {
            name: "efficientnet-lite0".into(),
            doc: format!(
                "EfficientNet-Lite0, ImageNet-1k; converted from a PyTorch checkpoint by \
                 mediaflow-image-convert: BatchNorm folded into the convs, {} padding",
                match padding {
                    Padding::TfSame => "TensorFlow SAME",
                    Padding::Symmetric => "symmetric",
                }
            ),
            inputs: vec![Io {
                name: "input".into(),
                dims: vec![
                    Dim::Symbol("N"),
                    Dim::Fixed(3),
                    Dim::Fixed(INPUT_SIZE),
                    Dim::Fixed(INPUT_SIZE),
                ],
            }],
            outputs: vec![Io {
                name: "probabilities".into(),
                dims: vec![Dim::Symbol("N"), Dim::Fixed(CLASSES)],
            }],
            ..Graph::default()
        },
        used: Vec::new(),
        size: INPUT_SIZE,
    };
    b.initializer("relu6.min".into(), vec![], vec![0.0]);
    b.initializer("relu6.max".into(), vec![], vec![6.0]);
    let mut x = b.conv(
        "input",
        Conv {
            weight: "_conv_stem.weight".into(),
            bn: "_bn0".into(),
            name: "stem",
            shape: [STEM, 3, 3, 3],
            stride: 2,
            groups: 1,
            relu6: true,
        },
    )?;
    let (mut cin, mut i) = (STEM, 0);
    for (expand, k, stride, cout, repeats) in STAGES {
        for r in 0..repeats {
            x = b.block(&x, i, cin, (expand, k, stride, cout), r == 0)?;
            cin = cout;
            i += 1;
        }
    }
    x = b.conv(
        &x,
        Conv {
            weight: "_conv_head.weight".into(),
            bn: "_bn1".into(),
            name: "head",
            shape: [HEAD, cin, 1, 1],
            stride: 1,
            groups: 1,
            relu6: true,
        },
    )?;
    b.node("GlobalAveragePool", "pool", &[&x], vec![]);
    b.node(
        "Flatten",
        "flatten",
        &["pool"],
        vec![("axis", Attr::Int(1))],
    );
    let fc_w = b.tensor("_fc.weight", &[CLASSES, HEAD])?;
    let fc_b = b.tensor("_fc.bias", &[CLASSES])?;
    b.initializer("fc.weight".into(), vec![CLASSES, HEAD], fc_w);
    b.initializer("fc.bias".into(), vec![CLASSES], fc_b);
    b.node(
        "Gemm",
        "logits",
        &["flatten", "fc.weight", "fc.bias"],
        vec![("transB", Attr::Int(1))],
    );
    b.node(
        "Softmax",
        "probabilities",
        &["logits"],
        vec![("axis", Attr::Int(1))],
    );
    if let Some(extra) = checkpoint
        .names()
        .find(|n| checkpoint.is_float(n) && !b.used.iter().any(|u| u == n))
    {
        return Err(CheckpointError::Tensor {
            name: extra.to_owned(),
            reason: "it is not part of EfficientNet-Lite0 (is this another EfficientNet, with \
                     squeeze-and-excitation or another width?)"
                .into(),
        });
    }
    Ok(b.graph)
}
