//! A workflow's steps laid out as a left-to-right DAG for the run page's SVG: each step in
//! the column after its deepest dependency, in plan order within a column.

use serde::Serialize;

/// Width and height of a step's box, and the gaps between boxes.
const W: i64 = 160;
const H: i64 = 40;
const GAP_X: i64 = 48;
const GAP_Y: i64 = 18;
const MARGIN: i64 = 12;

#[derive(Serialize, Debug, PartialEq)]
pub struct Node {
    pub id: String,
    pub plugin: String,
    /// `id` and `plugin` cut to fit the box.
    pub label: String,
    pub sublabel: String,
    pub status: String,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct Edge {
    /// An SVG path from the dependency's right edge to the step's left edge.
    pub d: String,
}

#[derive(Serialize, Debug)]
pub struct Dag {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub width: i64,
    pub height: i64,
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// Lays out steps given as `(id, plugin, status, deps)`, deps as indices of earlier
/// entries (the plan's topological order).
pub fn layout(steps: &[(String, String, String, Vec<usize>)]) -> Dag {
    let mut column = vec![0usize; steps.len()];
    for (i, (_, _, _, deps)) in steps.iter().enumerate() {
        column[i] = deps
            .iter()
            .filter(|&&d| d < i)
            .map(|&d| column[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut rows_in = std::collections::HashMap::<usize, i64>::new();
    let mut nodes = Vec::with_capacity(steps.len());
    for (i, (id, plugin, status, _)) in steps.iter().enumerate() {
        let row = rows_in.entry(column[i]).or_insert(0);
        nodes.push(Node {
            id: id.clone(),
            plugin: plugin.clone(),
            label: short(id, 20),
            sublabel: short(plugin, 22),
            status: status.clone(),
            x: MARGIN + column[i] as i64 * (W + GAP_X),
            y: MARGIN + *row * (H + GAP_Y),
            w: W,
            h: H,
        });
        *row += 1;
    }
    let mut edges = Vec::new();
    for (i, (_, _, _, deps)) in steps.iter().enumerate() {
        for &d in deps.iter().filter(|&&d| d < i) {
            let (a, b) = (&nodes[d], &nodes[i]);
            let (x1, y1) = (a.x + a.w, a.y + a.h / 2);
            let (x2, y2) = (b.x, b.y + b.h / 2);
            let mid = (x1 + x2) / 2;
            edges.push(Edge {
                d: format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
            });
        }
    }
    let width = nodes.iter().map(|n| n.x + n.w).max().unwrap_or(0) + MARGIN;
    let height = nodes.iter().map(|n| n.y + n.h).max().unwrap_or(0) + MARGIN;
    Dag {
        nodes,
        edges,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, deps: &[usize]) -> (String, String, String, Vec<usize>) {
        (id.into(), "p".into(), "succeeded".into(), deps.to_vec())
    }

    #[test]
    fn steps_go_one_column_after_their_deepest_dependency() {
        // a → b → d, a → c, d also needs c; e is alone.
        let dag = layout(&[
            step("a", &[]),
            step("b", &[0]),
            step("c", &[0]),
            step("d", &[1, 2]),
            step("e", &[]),
        ]);
        let col = |id: &str| {
            let n = dag.nodes.iter().find(|n| n.id == id).unwrap();
            (n.x - MARGIN) / (W + GAP_X)
        };
        assert_eq!(
            [col("a"), col("b"), col("c"), col("d"), col("e")],
            [0, 1, 1, 2, 0]
        );
        assert_eq!(dag.edges.len(), 4);
        // No two boxes overlap.
        for (i, p) in dag.nodes.iter().enumerate() {
            for q in &dag.nodes[i + 1..] {
                let apart =
                    p.x + p.w <= q.x || q.x + q.w <= p.x || p.y + p.h <= q.y || q.y + q.h <= p.y;
                assert!(apart, "{} and {} overlap", p.id, q.id);
            }
        }
        assert!(dag.width >= 3 * W && dag.height >= 2 * H);
    }
}
