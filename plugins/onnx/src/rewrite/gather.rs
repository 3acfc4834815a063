//! Embedding tables stored quantised, `table = Cast(q, float) · scale` feeding a `Gather`
//! (all-MiniLM-L6 int8 stores its 30522 × 384 word embeddings so), are gathered first and
//! dequantised after: `Gather(q, ids)` → `Cast` → `· Gather(scale, ids)`.
//!
//! tract 0.23.9 does not fold the dequantisation into a constant when a `Gather` reads it,
//! so every call cast and scaled the whole table (11.7 M values, about 20 ms, four times
//! the rest of the model) to read a few dozen rows. Gathering first also keeps the table
//! int8 in memory. The rewrite applies when the scale is one value per row (`[V, 1, …]`) or
//! does not vary along the rows (a scalar, or dimension 0 of size 1), and when every reader
//! of the dequantised table is a `Gather` along axis 0.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{tensor_proto::DataType, AttributeProto, GraphProto, NodeProto};

use super::{attribute, consumers, Constants};

/// How the scale broadcasts over the table's rows.
enum Scale {
    /// One value per row: gather it with the rows.
    PerRow,
    /// The same for every row: multiply as it is.
    Shared,
}

/// A dequantised table: the quantised initializer, the scale, and the gathers that read it.
struct Table {
    quantised: String,
    scale_name: String,
    scale: Scale,
    gathers: Vec<usize>,
}

fn find(g: &GraphProto) -> Option<Table> {
    let readers = consumers(g);
    let consts = Constants::of(g);
    for mul in &g.node {
        if mul.op_type != "Mul"
            || !mul.domain.is_empty()
            || mul.input.len() != 2
            || mul.output.len() != 1
        {
            continue;
        }
        for (side, other) in [(0usize, 1usize), (1, 0)] {
            let Some(ci) = g
                .node
                .iter()
                .position(|n| n.output.first() == Some(&mul.input[side]))
            else {
                continue;
            };
            let cast = &g.node[ci];
            let to_float = cast.op_type == "Cast"
                && attribute(cast, "to").is_some_and(|a| a.i == DataType::Float as i64);
            let Some(q) = cast.input.first().filter(|_| to_float) else {
                continue;
            };
            let Some(q_dims) = consts.dims(q) else {
                continue;
            };
            // The Cast must feed only this Mul.
            if readers.get(cast.output[0].as_str()).map(Vec::len) != Some(1) {
                continue;
            }
            let scale_name = &mul.input[other];
            let Some(s_dims) = consts.dims(scale_name) else {
                continue;
            };
            let scale = if s_dims.len() == q_dims.len()
                && s_dims.first() == q_dims.first()
                && s_dims.iter().skip(1).all(|&d| d == 1)
            {
                Scale::PerRow
            } else if s_dims.len() < q_dims.len()
                || (s_dims.len() == q_dims.len() && s_dims.first() == Some(&1))
            {
                Scale::Shared
            } else {
                continue;
            };
            let Some(gathers) = readers.get(mul.output[0].as_str()) else {
                continue;
            };
            let all_gather_rows = gathers.iter().all(|&gi| {
                let n = &g.node[gi];
                n.op_type == "Gather"
                    && n.domain.is_empty()
                    && n.input.len() == 2
                    && n.output.len() == 1
                    && n.input.first() == mul.output.first()
                    && attribute(n, "axis").map_or(0, |a| a.i) == 0
            });
            if q_dims.is_empty() || !all_gather_rows {
                continue;
            }
            return Some(Table {
                quantised: q.clone(),
                scale_name: scale_name.clone(),
                scale,
                gathers: gathers.clone(),
            });
        }
    }
    None
}

fn node(op: &str, inputs: Vec<String>, output: String) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.clone(),
        input: inputs,
        output: vec![output],
        ..Default::default()
    }
}

/// Rewrites every such table's gathers; returns how many gathers moved.
pub fn gather_before_dequantise(g: &mut GraphProto) -> usize {
    let mut moved = 0;
    while let Some(t) = find(g) {
        // Replace each Gather in place (its inputs are defined before it), last first so
        // the indices of the others stay valid.
        let mut gathers = t.gathers.clone();
        gathers.sort_unstable();
        for &gi in gathers.iter().rev() {
            let gather = g.node[gi].clone();
            let out = gather.output[0].clone();
            let ids = gather.input[1].clone();
            let mut rows = gather.clone();
            rows.input[0] = t.quantised.clone();
            rows.output = vec![format!("{out}.rows_q")];
            rows.name = rows.output[0].clone();
            let mut cast = node(
                "Cast",
                vec![rows.output[0].clone()],
                format!("{out}.rows_f"),
            );
            cast.attribute = vec![AttributeProto {
                name: "to".into(),
                r#type: AttributeType::Int as i32,
                i: DataType::Float as i64,
                ..Default::default()
            }];
            let mut new = vec![rows, cast];
            let scale = match t.scale {
                Scale::PerRow => {
                    let mut s = gather.clone();
                    s.input = vec![t.scale_name.clone(), ids];
                    s.output = vec![format!("{out}.rows_scale")];
                    s.name = s.output[0].clone();
                    let name = s.output[0].clone();
                    new.push(s);
                    name
                }
                Scale::Shared => t.scale_name.clone(),
            };
            new.push(node("Mul", vec![format!("{out}.rows_f"), scale], out));
            g.node.splice(gi..=gi, new);
            moved += 1;
        }
        // The table's Cast and Mul are read by nobody now; `drop_unused` removes them.
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{float_tensor, rewrite};
    use tract_onnx::pb::{tensor_proto::DataType, ModelProto, TensorProto};
    use tract_onnx::prelude::*;

    fn int8_table(name: &str, rows: usize, cols: usize) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![rows as i64, cols as i64],
            data_type: DataType::Int8 as i32,
            raw_data: (0..rows * cols)
                .map(|i| ((i * 37 % 255) as i32 - 127) as i8 as u8)
                .collect(),
            ..Default::default()
        }
    }

    /// `out = Gather(Cast(q) · scale, x)` for ids `x`.
    fn table_model(scale: TensorProto, scale_first: bool) -> ModelProto {
        let mul = if scale_first {
            node("Mul", &["scale", "q_f"], "table")
        } else {
            node("Mul", &["q_f", "scale"], "table")
        };
        let nodes = vec![
            with_int(node("Cast", &["q"], "q_f"), "to", DataType::Float as i64),
            mul,
            node("Gather", &["table", "x"], "out"),
        ];
        model(nodes, vec![int8_table("q", 10, 4), scale], DataType::Int64)
    }

    fn run(proto: &ModelProto) -> Vec<f32> {
        let ids = tract_ndarray::Array2::from_shape_vec((2, 3), vec![0i64, 9, 3, 3, 5, 1]).unwrap();
        super::super::testing::run(proto, ids.into())
    }

    #[test]
    fn a_per_row_scale_is_gathered_with_the_rows() {
        let scale = float_tensor("scale".into(), &[10, 1], &values(10, 3.0));
        let mut proto = table_model(scale, false);
        let before = run(&proto);
        assert_eq!(rewrite(&mut proto).gathers, 1);
        assert_eq!(ops(&proto), ["Gather", "Cast", "Gather", "Mul"]);
        assert_close(&before, &run(&proto));
    }

    #[test]
    fn a_shared_scale_multiplies_the_gathered_rows() {
        let scale = float_tensor("scale".into(), &[1, 4], &[0.5, -1.0, 2.0, 0.25]);
        let mut proto = table_model(scale, true);
        let before = run(&proto);
        assert_eq!(rewrite(&mut proto).gathers, 1);
        assert_eq!(ops(&proto), ["Gather", "Cast", "Mul"]);
        assert_close(&before, &run(&proto));
    }

    #[test]
    fn a_table_read_by_anything_but_a_gather_is_left_alone() {
        let scale = float_tensor("scale".into(), &[10, 1], &values(10, 3.0));
        let mut proto = table_model(scale, false);
        let g = proto.graph.as_mut().unwrap();
        g.node.push(node("ReduceSum", &["table"], "sum"));
        assert_eq!(rewrite(&mut proto).gathers, 0);
    }
}
