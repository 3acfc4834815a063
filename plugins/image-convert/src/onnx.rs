//! A minimal ONNX writer: a `ModelProto` (IR version 8, opset 13) of one graph with float32
//! initializers, encoded by hand. Protobuf needs little here: varints, fixed32 floats and
//! length-delimited fields (strings, bytes, nested messages). Fields are written in field
//! number order and repeated scalars unpacked (onnx.proto is proto2), so the same graph
//! always gives the same bytes.

/// ONNX's `TensorProto.DataType.FLOAT`.
const FLOAT: u64 = 1;
/// `AttributeProto.AttributeType`.
const ATTR_FLOAT: u64 = 1;
const ATTR_INT: u64 = 2;
const ATTR_INTS: u64 = 7;

pub const IR_VERSION: u64 = 8;
pub const OPSET: u64 = 13;

/// One protobuf message being written.
#[derive(Debug, Default)]
pub struct Message(Vec<u8>);

/// Appends `v` as a base-128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Message {
    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, u64::from(field) << 3 | u64::from(wire));
    }

    /// An integer field (int32, int64, enum): negative values as their two's complement.
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        varint(&mut self.0, v as u64);
        self
    }

    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A node attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: &'static str,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// A float32 constant of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A graph input or output: a float32 tensor whose dimensions are sizes or named symbols.
#[derive(Clone, Debug, PartialEq)]
pub struct Io {
    pub name: String,
    pub dims: Vec<Dim>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Symbol(&'static str),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    pub doc: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
}

fn attribute(name: &str, value: &Attr) -> Message {
    // AttributeProto: name 1, f 2, i 3, ints 8, type 20.
    let mut m = Message::default();
    m.string(1, name);
    let ty = match value {
        Attr::Float(f) => {
            m.float(2, *f);
            ATTR_FLOAT
        }
        Attr::Int(i) => {
            m.int(3, *i);
            ATTR_INT
        }
        Attr::Ints(v) => {
            for i in v {
                m.int(8, *i);
            }
            ATTR_INTS
        }
    };
    m.int(20, ty as i64);
    m
}

fn node(n: &Node) -> Message {
    // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
    let mut m = Message::default();
    for i in &n.inputs {
        m.string(1, i);
    }
    for o in &n.outputs {
        m.string(2, o);
    }
    m.string(3, &n.name).string(4, n.op);
    for (name, value) in &n.attrs {
        m.message(5, &attribute(name, value));
    }
    m
}

fn initializer(t: &Initializer) -> Message {
    // TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
    let mut m = Message::default();
    for d in &t.dims {
        m.int(1, *d as i64);
    }
    m.int(2, FLOAT as i64).string(8, &t.name);
    let raw: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    m.bytes(9, &raw);
    m
}

fn value_info(io: &Io) -> Message {
    // ValueInfoProto { name 1, type 2: TypeProto { tensor_type 1: { elem_type 1,
    // shape 2: TensorShapeProto { dim 1: { dim_value 1 | dim_param 2 } } } } }
    let mut shape = Message::default();
    for d in &io.dims {
        let mut dim = Message::default();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Symbol(s) => dim.string(2, s),
        };
        shape.message(1, &dim);
    }
    let mut tensor = Message::default();
    tensor.int(1, FLOAT as i64).message(2, &shape);
    let mut ty = Message::default();
    ty.message(1, &tensor);
    let mut m = Message::default();
    m.string(1, &io.name).message(2, &ty);
    m
}

/// The ONNX file for `graph`.
pub fn model_bytes(graph: &Graph, producer: &str) -> Vec<u8> {
    // GraphProto: node 1, name 2, initializer 5, doc_string 10, input 11, output 12.
    let mut g = Message::default();
    for n in &graph.nodes {
        g.message(1, &node(n));
    }
    g.string(2, &graph.name);
    for t in &graph.initializers {
        g.message(5, &initializer(t));
    }
    if !graph.doc.is_empty() {
        g.string(10, &graph.doc);
    }
    for i in &graph.inputs {
        g.message(11, &value_info(i));
    }
    for o in &graph.outputs {
        g.message(12, &value_info(o));
    }
    // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 { domain 1, version 2 }.
    let mut opset = Message::default();
    opset.string(1, "").int(2, OPSET as i64);
    let mut m = Message::default();
    m.int(1, IR_VERSION as i64)
        .string(2, producer)
        .message(7, &g)
        .message(8, &opset);
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one varint at `*pos` (the test's decoder; the writer needs none).
    fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    /// The fields of a message: (field number, wire type, varint value or payload).
    fn fields(b: &[u8]) -> Vec<(u32, u8, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let key = read_varint(b, &mut pos);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
            match wire {
                0 => out.push((field, wire, read_varint(b, &mut pos), Vec::new())),
                2 => {
                    let n = read_varint(b, &mut pos) as usize;
                    out.push((field, wire, 0, b[pos..pos + n].to_vec()));
                    pos += n;
                }
                5 => {
                    out.push((field, wire, 0, b[pos..pos + 4].to_vec()));
                    pos += 4;
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
            (-1i64) as u64,
        ] {
            let mut b = Vec::new();
            varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos), v);
            assert_eq!(pos, b.len());
        }
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02], "the protobuf documentation's example");
        let mut b = Vec::new();
        varint(&mut b, (-1i64) as u64);
        assert_eq!(b.len(), 10, "negative int64s take ten bytes");
    }

    #[test]
    fn a_model_encodes_as_nested_fields() {
        let graph = Graph {
            name: "g".into(),
            doc: String::new(),
            nodes: vec![Node {
                op: "Conv",
                name: "c".into(),
                inputs: vec!["x".into(), "w".into()],
                outputs: vec!["y".into()],
                attrs: vec![("pads", Attr::Ints(vec![0, 1])), ("group", Attr::Int(3))],
            }],
            initializers: vec![Initializer {
                name: "w".into(),
                dims: vec![2],
                data: vec![1.5, -2.0],
            }],
            inputs: vec![Io {
                name: "x".into(),
                dims: vec![Dim::Symbol("N"), Dim::Fixed(3)],
            }],
            outputs: vec![],
        };
        let bytes = model_bytes(&graph, "test");
        assert_eq!(bytes, model_bytes(&graph, "test"), "deterministic");
        let model = fields(&bytes);
        assert_eq!(model[0], (1, 0, 8, vec![]), "ir_version 8");
        assert_eq!(model[1].3, b"test");
        let opset = fields(&model[3].3);
        assert_eq!(opset[1], (2, 0, 13, vec![]), "opset 13");
        let g = fields(&model[2].3);
        let n = fields(&g[0].3);
        assert_eq!(
            n.iter().map(|f| f.0).collect::<Vec<_>>(),
            [1, 1, 2, 3, 4, 5, 5]
        );
        assert_eq!(n[4].3, b"Conv");
        let pads = fields(&n[5].3);
        assert_eq!(pads[0].3, b"pads");
        assert_eq!((pads[1].2, pads[2].2, pads[3].2), (0, 1, 7));
        let t = fields(&g[2].3);
        assert_eq!((t[0].2, t[1].2), (2, 1), "dims [2], FLOAT");
        let raw: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(t[3], (9, 2, 0, raw));
        let input = fields(&g[3].3);
        let tensor = fields(&fields(&input[1].3)[0].3);
        let dims = fields(&tensor[1].3);
        assert_eq!(fields(&dims[0].3)[0], (2, 2, 0, b"N".to_vec()));
        assert_eq!(fields(&dims[1].3)[0], (1, 0, 3, vec![]));
    }
}
