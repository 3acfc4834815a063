//! Legacy checkpoints written by hand, the way `torch.save` (PyTorch < 1.6) lays them out:
//! views gathered through their strides, and broken files refused with what is wrong.

use mediaflow_image_convert::{build, Checkpoint, Padding, TorchEfficientNetLite};
use mediaflow_models::Converter;

/// One tensor: name, storage class, storage key, storage size, offset, size, stride.
type Entry<'a> = (&'a str, &'a str, &'a str, u32, u32, &'a [u32], &'a [u32]);

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn int(out: &mut Vec<u8>, i: u32) {
    out.push(b'J');
    out.extend_from_slice(&i.to_le_bytes());
}

fn ints(out: &mut Vec<u8>, v: &[u32]) {
    out.push(b'(');
    for &i in v {
        int(out, i);
    }
    out.push(b't');
}

/// A legacy checkpoint of `tensors`, then `storages` (key, element count, raw bytes).
fn checkpoint(tensors: &[Entry], storages: &[(&str, i64, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.".to_vec();
    b.extend_from_slice(b"\x80\x02M\xe9\x03.");
    b.extend_from_slice(b"\x80\x02}(");
    string(&mut b, "little_endian");
    b.extend_from_slice(b"\x88u.");
    b.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\n)R(");
    for (name, class, key, numel, offset, size, stride) in tensors {
        string(&mut b, name);
        b.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        string(&mut b, "storage");
        b.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
        string(&mut b, key);
        string(&mut b, "cpu");
        int(&mut b, *numel);
        b.extend_from_slice(b"NtQ");
        int(&mut b, *offset);
        ints(&mut b, size);
        ints(&mut b, stride);
        b.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    }
    b.extend_from_slice(b"u.\x80\x02](");
    for (key, _, _) in storages {
        string(&mut b, key);
    }
    b.extend_from_slice(b"e.");
    for (_, count, raw) in storages {
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(raw);
    }
    b
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn error(bytes: Vec<u8>) -> String {
    Checkpoint::parse(bytes).expect_err("refused").to_string()
}

const SIX: [f32; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];

#[test]
fn a_view_is_gathered_through_its_offset_and_strides() {
    let c = Checkpoint::parse(checkpoint(
        &[
            // Column-major 2×3 (TF's order), a strided slice of the same storage, a counter.
            ("t", "FloatStorage", "0", 6, 0, &[2, 3], &[1, 2]),
            ("v", "FloatStorage", "0", 6, 1, &[2], &[3]),
            ("n", "LongStorage", "1", 1, 0, &[], &[]),
        ],
        &[
            ("0", 6, floats(&SIX)),
            ("1", 1, 7i64.to_le_bytes().to_vec()),
        ],
    ))
    .unwrap();
    assert_eq!(c.names().collect::<Vec<_>>(), ["t", "v", "n"]);
    let t = c.tensor_shaped("t", &[2, 3]).unwrap();
    assert_eq!(t.data, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    assert_eq!(c.tensor("v").unwrap().data, [1.0, 4.0]);
    assert!(c.is_float("t") && !c.is_float("n") && !c.is_float("absent"));
    let e = c.tensor("n").unwrap_err().to_string();
    assert!(e.contains("`n`") && e.contains("LongStorage"), "{e}");
    let e = c.tensor_shaped("t", &[3, 2]).unwrap_err().to_string();
    assert_eq!(e, "tensor `t`: its shape is [2, 3], expected [3, 2]");
    assert!(c
        .tensor("absent")
        .unwrap_err()
        .to_string()
        .contains("not in the checkpoint"));
}

#[test]
fn broken_checkpoints_say_what_is_wrong() {
    let good = |size: &'static [u32], stride: &'static [u32]| {
        checkpoint(
            &[("w", "FloatStorage", "0", 6, 0, size, stride)],
            &[("0", 6, floats(&SIX))],
        )
    };
    assert!(Checkpoint::parse(good(&[2, 3], &[3, 1])).is_ok());

    // A view reaching past its storage is refused when the tensor is read.
    let c = Checkpoint::parse(good(&[2, 3], &[1, 3])).unwrap();
    let e = c.tensor("w").unwrap_err().to_string();
    assert!(
        e.contains("tensor `w`") && e.contains("reaches past the 6 elements"),
        "{e}"
    );

    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&good(&[6], &[1]));
    assert!(error(zip).contains("zip-format"));
    assert!(error(b"\x80\x02K\x05.".to_vec()).contains("magic number"));

    let mut truncated = good(&[6], &[1]);
    truncated.pop();
    let e = error(truncated);
    assert!(e.contains("storage `0`") && e.contains("do not fit"), "{e}");
    let mut trailing = good(&[6], &[1]);
    trailing.push(0);
    assert!(error(trailing).contains("1 bytes follow the last storage"));
    let e = error(checkpoint(
        &[("w", "FloatStorage", "0", 6, 0, &[6], &[1])],
        &[("0", 5, floats(&SIX[..5]))],
    ));
    assert!(
        e.contains("5 elements, but the state dict declares 6"),
        "{e}"
    );
    let e = error(checkpoint(
        &[("w", "FloatStorage", "0", 6, 0, &[6], &[1])],
        &[],
    ));
    assert!(
        e.contains("`w`") && e.contains("not in the list of storages"),
        "{e}"
    );

    // A hostile global inside the state dict is refused, with its offset.
    let mut hostile = good(&[6], &[1]);
    let at = hostile.windows(6).position(|w| w == b"torch\n").unwrap();
    hostile.splice(at..at + 18, b"os\nsystem\n\0\0\0\0\0\0\0\0".iter().copied());
    let e = error(hostile);
    assert!(
        e.contains("the state dict: pickle byte") && e.contains("refusing GLOBAL `os.system`"),
        "{e}"
    );
}

#[test]
fn another_model_s_weights_are_refused_by_name() {
    let c = Checkpoint::parse(checkpoint(
        &[(
            "_conv_stem.weight",
            "FloatStorage",
            "0",
            6,
            0,
            &[2, 3, 1, 1],
            &[3, 1, 1, 1],
        )],
        &[("0", 6, floats(&SIX))],
    ))
    .unwrap();
    let e = build(&c, Padding::TfSame).unwrap_err().to_string();
    assert_eq!(
        e,
        "tensor `_conv_stem.weight`: its shape is [2, 3, 1, 1], expected [32, 3, 3, 3]"
    );
}

#[test]
fn the_converter_names_the_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let c: &dyn Converter = &TorchEfficientNetLite;
    assert_eq!(c.name(), "torch-efficientnet-lite");
    let input = dir.path().join("model.pth");
    let out = dir.path().join("model.onnx");
    let e = c.convert(&input, None, &out).unwrap_err();
    assert!(
        e.to_string().starts_with(&input.display().to_string()),
        "{e}"
    );
    assert!(
        std::error::Error::source(&e).is_some(),
        "the I/O error is kept"
    );

    std::fs::write(&input, b"\x80\x02cos\nsystem\n.").unwrap();
    let e = c.convert(&input, None, &out).unwrap_err().to_string();
    assert!(
        e.contains("is not an EfficientNet-Lite0 checkpoint") && e.contains("os.system"),
        "{e}"
    );
    assert!(!out.exists());
}
