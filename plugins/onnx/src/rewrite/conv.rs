//! A convolution's per-channel affine tail (a bias `Add`, BatchNorm written out as `Sub`/`Mul`/`Add`, a `Div` by a constant) is folded
//! into the convolution's weights and bias, also when layout `Transpose`s and no-op float
//! `Cast`s sit between them.
//!
//! Why here and not in tract: models converted from TensorFlow through PyTorch (open-nsfw is
//! one) compute in NHWC and wrap every `Conv` in `Transpose`s, so the affine tail comes after
//! a `Transpose` with constants shaped `[1, 1, 1, C]`. tract 0.23.9 does not fold those, and
//! its `ChangeAxes` pass then fails on the bias it half-moved ("Bias should be scalar or a
//! vector with one value per output channel"), so the model ran without axis changes: every
//! layer paid for two transposes and four elementwise passes. With the tail folded, the
//! `Transpose`s meet directly and `ChangeAxes` cancels them.
//!
//! For each channel `c`, the tail computes `y = s[c] · conv(x)[c] + b[c]`, so the folded
//! convolution has weights `W[c]·s[c]` and bias `B[c]·s[c] + b[c]`. Only constant operands
//! that broadcast along the channel axis alone are folded; anything else ends the tail.

use std::collections::HashSet;

use tract_onnx::pb::{tensor_proto::DataType, GraphProto, NodeProto};

use super::{attribute, consumers, float_tensor, Constant, Constants};

/// `k`, one value per channel (or one for all), if it broadcasts along `axis` of a rank-`rank`
/// value with `channels` channels and no other axis.
fn per_channel(k: &Constant, axis: usize, rank: usize, channels: usize) -> Option<Vec<f64>> {
    if k.dims.len() > rank {
        return None;
    }
    let offset = rank - k.dims.len();
    for (i, &d) in k.dims.iter().enumerate() {
        let along = i + offset == axis;
        if d != 1 && !(along && d == channels) {
            return None;
        }
    }
    match k.values.len() {
        1 => Some(vec![f64::from(k.values[0]); channels]),
        n if n == channels => Some(k.values.iter().map(|&v| f64::from(v)).collect()),
        _ => None,
    }
}

/// What one node of the tail does to the running `(scale, shift)`.
enum Step {
    /// A layout change: the channel axis moves.
    Transpose(Vec<usize>),
    /// A no-op cast to f32 (the tail is f32 throughout).
    Cast,
    /// `y = x·s + b` per channel.
    Affine { s: Vec<f64>, b: Vec<f64> },
}

fn step(
    node: &NodeProto,
    input: &str,
    consts: &Constants,
    axis: usize,
    rank: usize,
    channels: usize,
) -> Option<Step> {
    match node.op_type.as_str() {
        "Transpose" => {
            let perm: Vec<usize> = attribute(node, "perm")?
                .ints
                .iter()
                .map(|&p| usize::try_from(p).ok())
                .collect::<Option<_>>()?;
            let mut seen = perm.clone();
            seen.sort_unstable();
            (seen == (0..rank).collect::<Vec<_>>()).then_some(Step::Transpose(perm))
        }
        "Cast" => (attribute(node, "to")?.i == DataType::Float as i64).then_some(Step::Cast),
        "Add" | "Sub" | "Mul" | "Div" => {
            if node.input.len() != 2 || node.input[0] == node.input[1] {
                return None;
            }
            let first = node.input[0] == input;
            let other = if first {
                &node.input[1]
            } else {
                &node.input[0]
            };
            let k = per_channel(&consts.float(other)?, axis, rank, channels)?;
            let zero = vec![0.0; channels];
            let one = vec![1.0; channels];
            Some(match (node.op_type.as_str(), first) {
                ("Add", _) => Step::Affine { s: one, b: k },
                ("Sub", true) => Step::Affine {
                    s: one,
                    b: k.iter().map(|v| -v).collect(),
                },
                ("Sub", false) => Step::Affine {
                    s: vec![-1.0; channels],
                    b: k,
                },
                ("Mul", _) => Step::Affine { s: k, b: zero },
                ("Div", true) if k.iter().all(|v| *v != 0.0) => Step::Affine {
                    s: k.iter().map(|v| 1.0 / v).collect(),
                    b: zero,
                },
                _ => return None,
            })
        }
        _ => None,
    }
}

/// Folds every foldable tail in `g`; returns how many convolutions absorbed one.
pub fn fold_conv_tails(g: &mut GraphProto) -> usize {
    let mut folded = 0;
    // One tail at a time: each fold renames values, so the maps are rebuilt.
    while let Some(next) = find_tail(g) {
        apply(g, next);
        folded += 1;
    }
    folded
}

/// A tail found: the conv, the nodes after it, and the folded weights and bias.
struct Tail {
    conv: usize,
    transposes: Vec<usize>,
    removed: Vec<usize>,
    end: String,
    weights: Vec<f32>,
    weight_dims: Vec<usize>,
    bias: Vec<f32>,
}

fn find_tail(g: &GraphProto) -> Option<Tail> {
    let consts = Constants::of(g);
    let consumers = consumers(g);
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    for (ci, conv) in g.node.iter().enumerate() {
        if conv.op_type != "Conv" || !conv.domain.is_empty() || conv.output.len() != 1 {
            continue;
        }
        let Some(w_name) = conv.input.get(1) else {
            continue;
        };
        let Some(w_dims) = consts.dims(w_name) else {
            continue;
        };
        let (rank, channels) = (w_dims.len(), w_dims.first().copied().unwrap_or(0));
        if rank < 3 || channels == 0 {
            continue;
        }
        let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => match consts.float(b) {
                Some(c) if c.values.len() == channels => {
                    c.values.iter().map(|&v| f64::from(v)).collect()
                }
                _ => continue,
            },
            None => vec![0.0; channels],
        };
        let (mut s, mut b) = (vec![1.0f64; channels], vec![0.0f64; channels]);
        let (mut axis, mut cur) = (1usize, conv.output[0].as_str());
        let (mut transposes, mut removed, mut end) = (Vec::new(), Vec::new(), None);
        loop {
            if outputs.contains(cur) {
                break;
            }
            let [next] = consumers.get(cur).map(Vec::as_slice).unwrap_or_default() else {
                break;
            };
            let node = &g.node[*next];
            if !node.domain.is_empty() || node.output.len() != 1 {
                break;
            }
            match step(node, cur, &consts, axis, rank, channels) {
                Some(Step::Transpose(perm)) => {
                    let Some(moved) = perm.iter().position(|&p| p == axis) else {
                        break;
                    };
                    axis = moved;
                    transposes.push(*next);
                }
                Some(Step::Cast) => removed.push(*next),
                Some(Step::Affine { s: ks, b: kb }) => {
                    for c in 0..channels {
                        s[c] *= ks[c];
                        b[c] = b[c] * ks[c] + kb[c];
                    }
                    removed.push(*next);
                    end = Some(node.output[0].clone());
                }
                None => break,
            }
            cur = node.output[0].as_str();
        }
        let Some(end) = end else {
            continue;
        };
        // Nodes after the last affine step stay where they are.
        let Some(last) = g.node.iter().position(|n| n.output.first() == Some(&end)) else {
            continue;
        };
        transposes.retain(|&t| t < last);
        removed.retain(|&r| r <= last);
        // Decoded only now: most convolutions have no tail to fold.
        let Some(w) = consts
            .float(w_name)
            .filter(|w| w.values.len() % channels == 0)
        else {
            continue;
        };
        let per = w.values.len() / channels;
        let weights = w
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| (f64::from(v) * s[i / per]) as f32)
            .collect();
        let bias = (0..channels)
            .map(|c| (bias[c] * s[c] + b[c]) as f32)
            .collect();
        return Some(Tail {
            conv: ci,
            transposes,
            removed,
            end,
            weights,
            weight_dims: w.dims.clone(),
            bias,
        });
    }
    None
}

fn apply(g: &mut GraphProto, t: Tail) {
    let base = g.node[t.conv].output[0].clone();
    let (w_name, b_name) = (format!("{base}.folded_w"), format!("{base}.folded_b"));
    g.initializer
        .push(float_tensor(w_name.clone(), &t.weight_dims, &t.weights));
    g.initializer
        .push(float_tensor(b_name.clone(), &[t.weight_dims[0]], &t.bias));
    let conv = &mut g.node[t.conv];
    conv.input.truncate(1);
    conv.input.push(w_name);
    conv.input.push(b_name);
    // conv → the kept transposes, in order → the tail's last value.
    let mut value = base;
    for (i, &ti) in t.transposes.iter().enumerate() {
        let node = &mut g.node[ti];
        node.input = vec![value.clone()];
        value = if i + 1 == t.transposes.len() {
            t.end.clone()
        } else {
            format!("{}.moved", node.output[0])
        };
        node.output = vec![value.clone()];
    }
    if t.transposes.is_empty() {
        g.node[t.conv].output = vec![t.end.clone()];
    }
    let gone: HashSet<usize> = t.removed.into_iter().collect();
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        !gone.contains(&(i - 1))
    });
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use tract_onnx::pb::{ModelProto, TensorProto};
    use tract_onnx::prelude::*;

    /// NHWC input → Transpose → Conv (3×3, 2→3 channels) → Transpose → `tail` → `out`.
    fn model(tail: Vec<NodeProto>, consts: Vec<TensorProto>) -> ModelProto {
        let mut nodes = vec![
            with_ints(node("Transpose", &["x"], "nchw"), "perm", &[0, 3, 1, 2]),
            with_ints(
                node("Conv", &["nchw", "w", "bias"], "conv"),
                "pads",
                &[1, 1, 1, 1],
            ),
            with_ints(node("Transpose", &["conv"], "nhwc"), "perm", &[0, 2, 3, 1]),
        ];
        nodes.extend(tail);
        let mut initializer = vec![
            float_tensor("w".into(), &[3, 2, 3, 3], &values(54, 1.0)),
            float_tensor("bias".into(), &[3], &[0.1, -0.2, 0.3]),
        ];
        initializer.extend(consts);
        super::super::testing::model(nodes, initializer, DataType::Float)
    }

    fn fold(proto: &mut ModelProto) -> usize {
        let done = super::super::rewrite(proto);
        assert_eq!(done.gathers, 0);
        done.conv_tails
    }

    fn run(proto: &ModelProto) -> Vec<f32> {
        let x = tract_ndarray::Array4::from_shape_vec((1, 4, 5, 2), values(40, 7.0)).unwrap();
        super::super::testing::run(proto, x.into())
    }

    #[test]
    fn batchnorm_after_a_layout_transpose_folds_into_the_convolution() {
        let tail = vec![
            with_int(node("Cast", &["nhwc"], "cast"), "to", 1),
            node("Add", &["cast", "k_add"], "a"),
            node("Sub", &["a", "k_mean"], "b"),
            node("Mul", &["b", "k_scale"], "c"),
            node("Div", &["c", "k_two"], "d"),
            node("Sub", &["k_one", "d"], "e"),
            node("Relu", &["e"], "out"),
        ];
        let consts = vec![
            float_tensor("k_add".into(), &[1, 1, 1, 3], &[0.5, 1.5, -2.0]),
            float_tensor("k_mean".into(), &[3], &[0.25, -0.75, 1.0]),
            float_tensor("k_scale".into(), &[1, 1, 1, 3], &[2.0, -0.5, 3.0]),
            float_tensor("k_two".into(), &[], &[2.0]),
            float_tensor("k_one".into(), &[1], &[1.0]),
        ];
        let mut proto = model(tail, consts);
        let before = run(&proto);
        assert_eq!(fold(&mut proto), 1);
        assert_eq!(ops(&proto), ["Transpose", "Conv", "Transpose", "Relu"]);
        let g = proto.graph.as_ref().unwrap();
        assert!(g.initializer.iter().all(|t| !t.name.starts_with("k_")));
        assert_close(&before, &run(&proto));
    }

    #[test]
    fn a_constant_that_is_not_per_channel_ends_the_tail() {
        // [1, 4, 1, 1] in NHWC varies along the height, not the channels.
        let tail = vec![
            node("Mul", &["nhwc", "k_scale"], "a"),
            node("Add", &["a", "k_rows"], "out"),
        ];
        let consts = vec![
            float_tensor("k_scale".into(), &[3], &[2.0, -0.5, 3.0]),
            float_tensor("k_rows".into(), &[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]),
        ];
        let mut proto = model(tail, consts);
        let before = run(&proto);
        assert_eq!(fold(&mut proto), 1);
        assert_eq!(ops(&proto), ["Transpose", "Conv", "Transpose", "Add"]);
        assert_close(&before, &run(&proto));
    }

    #[test]
    fn a_value_used_twice_is_not_folded_past() {
        // `a` feeds both the Add and the output's Mul: folding the Add would change `a`.
        let tail = vec![
            node("Add", &["nhwc", "k_add"], "a"),
            node("Add", &["a", "k_add"], "b"),
            node("Mul", &["a", "b"], "out"),
        ];
        let consts = vec![float_tensor("k_add".into(), &[3], &[0.5, 1.5, -2.0])];
        let mut proto = model(tail, consts);
        let before = run(&proto);
        assert_eq!(fold(&mut proto), 1);
        assert_eq!(
            ops(&proto),
            ["Transpose", "Conv", "Transpose", "Add", "Mul"]
        );
        assert_close(&before, &run(&proto));
    }
}
