//! Rewrites of the ONNX graph before tract reads it, for patterns tract 0.23.9 runs slowly
//! or cannot optimise. Each keeps the model's outputs (checked against the unrewritten
//! graph in the tests here, and against onnxruntime in `tests/parity.rs`):
//! - [`conv`]: a convolution's per-channel affine tail (bias, BatchNorm as Sub/Mul/Add),
//!   also behind layout `Transpose`s, folded into its weights;
//! - [`gather`]: an embedding table stored quantised (`Cast(int8) · scale`) is gathered
//!   first and dequantised after, so a call dequantises the rows it uses, not the table.

pub mod conv;
pub mod gather;

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{self, tensor_proto::DataType, GraphProto, NodeProto, TensorProto};

/// What [`rewrite`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rewrites {
    /// Convolutions that absorbed an affine tail.
    pub conv_tails: usize,
    /// Gathers moved before their table's dequantisation.
    pub gathers: usize,
}

/// Applies every rewrite to `model`.
pub fn rewrite(model: &mut pb::ModelProto) -> Rewrites {
    let Some(g) = model.graph.as_mut() else {
        return Rewrites::default();
    };
    let done = Rewrites {
        conv_tails: conv::fold_conv_tails(g),
        gathers: gather::gather_before_dequantise(g),
    };
    if done != Rewrites::default() {
        drop_unused(g);
    }
    done
}

/// A constant's shape and values (f32 only).
pub(crate) struct Constant {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

pub(crate) fn float_values(t: &TensorProto) -> Option<Constant> {
    if t.data_type != DataType::Float as i32 || !t.external_data.is_empty() {
        return None;
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let count: usize = dims.iter().product();
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    (values.len() == count).then_some(Constant { dims, values })
}

pub(crate) fn float_tensor(name: String, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name,
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(crate) fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// The graph's constants by value name: initializers, `Constant` nodes, and `Identity`
/// nodes that rename either. Values are decoded when asked for.
pub(crate) struct Constants<'a>(HashMap<&'a str, &'a TensorProto>);

impl<'a> Constants<'a> {
    pub fn of(g: &'a GraphProto) -> Self {
        let mut found: HashMap<&str, &TensorProto> =
            g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        for node in &g.node {
            let Some(out) = node.output.first() else {
                continue;
            };
            let value = match node.op_type.as_str() {
                "Constant" => attribute(node, "value").and_then(|a| a.t.as_ref()),
                "Identity" => node
                    .input
                    .first()
                    .and_then(|i| found.get(i.as_str()).copied()),
                _ => None,
            };
            if let Some(v) = value {
                found.insert(out.as_str(), v);
            }
        }
        Constants(found)
    }

    /// The shape of constant `name`, whatever its type.
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.0
            .get(name)?
            .dims
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect()
    }

    /// Constant `name`'s values, if it is an f32 tensor.
    pub fn float(&self, name: &str) -> Option<Constant> {
        float_values(self.0.get(name)?)
    }
}

/// Which nodes read each value (by index in `g.node`).
pub(crate) fn consumers(g: &GraphProto) -> HashMap<&str, Vec<usize>> {
    let mut found: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for input in &n.input {
            found.entry(input.as_str()).or_default().push(i);
        }
    }
    found
}

/// Removes nodes whose outputs nobody reads (repeatedly) and initializers nobody reads.
fn drop_unused(g: &mut GraphProto) {
    loop {
        let used: HashSet<String> = g
            .node
            .iter()
            .flat_map(|n| n.input.iter().cloned())
            .chain(g.output.iter().map(|o| o.name.clone()))
            .collect();
        let before = g.node.len();
        g.node.retain(|n| n.output.iter().any(|o| used.contains(o)));
        if g.node.len() == before {
            g.initializer.retain(|t| used.contains(&t.name));
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use pb::{attribute_proto::AttributeType, ModelProto, OperatorSetIdProto, ValueInfoProto};
    use tract_onnx::prelude::*;

    pub fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    pub fn with_ints(mut n: NodeProto, name: &str, ints: &[i64]) -> NodeProto {
        n.attribute.push(pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: ints.to_vec(),
            ..Default::default()
        });
        n
    }

    pub fn with_int(mut n: NodeProto, name: &str, i: i64) -> NodeProto {
        n.attribute.push(pb::AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        });
        n
    }

    pub fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
    }

    fn input(name: &str, datum: DataType) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: datum as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A model of `nodes` with one input `x` of type `datum` and one output `out`.
    pub fn model(
        nodes: Vec<NodeProto>,
        initializer: Vec<TensorProto>,
        datum: DataType,
    ) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(GraphProto {
                node: nodes,
                initializer,
                input: vec![input("x", datum)],
                output: vec![ValueInfoProto {
                    name: "out".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `proto`'s first output for input `x`, as tract computes it.
    pub fn run(proto: &ModelProto, x: Tensor) -> Vec<f32> {
        let mut m = tract_onnx::onnx().parse(proto, None).unwrap().model;
        m.set_input_fact(0, InferenceFact::from(TypedFact::shape_and_dt_of(&x)))
            .unwrap();
        let plan = m.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(x.into())).unwrap();
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    pub fn ops(proto: &ModelProto) -> Vec<String> {
        let g = proto.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type.clone()).collect()
    }

    pub fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 1e-5,
            "the rewritten graph's output differs by {worst}"
        );
    }
}
