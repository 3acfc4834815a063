use super::*;

/// `OrderedDict({'w': _rebuild_tensor_v2(<FloatStorage '7' of 6>, 1, (2, 2), (1, 2), False,
/// OrderedDict())})`, the way `torch.save` (protocol 2) writes it.
const STATE: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w\
ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storagectorch\nFloatStorage\n\
X\x01\x00\x00\x007X\x03\x00\x00\x00cpuK\x06NtQK\x01K\x02K\x02\x86K\x01K\x02\x86\x89h\x00)Rtq\x03\
Ru}X\x09\x00\x00\x00_metadatah\x00)Rsb.";

fn error(bytes: &[u8]) -> PickleError {
    load(bytes, 0).expect_err("refused")
}

#[test]
fn reads_a_state_dict_of_one_tensor() {
    let p = load(STATE, 0).unwrap();
    assert_eq!(p.end, STATE.len());
    let d = p.dict(&p.value).unwrap();
    assert_eq!(d.entries.len(), 1);
    let Some(Value::Tensor(t)) = d.get("w") else {
        panic!("{:?}", d.get("w"));
    };
    assert_eq!(
        *t.storage,
        StorageRef {
            ty: StorageType::Float,
            key: "7".into(),
            numel: 6
        }
    );
    assert_eq!(
        (t.offset, &t.size[..], &t.stride[..]),
        (1, &[2, 2][..], &[1, 2][..])
    );
}

#[test]
fn pickles_follow_each_other_and_integers_decode() {
    // torch's magic number (LONG1, 10 bytes), then 1001 (BININT2), then -2 (BININT).
    let mut b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.".to_vec();
    b.extend_from_slice(b"\x80\x02M\xe9\x03.");
    b.extend_from_slice(b"J\xfe\xff\xff\xff.");
    let first = load(&b, 0).unwrap();
    assert!(matches!(
        first.value,
        Value::Int(0x1950_a86a_20f9_469c_fc6c)
    ));
    let second = load(&b, first.end).unwrap();
    assert!(matches!(second.value, Value::Int(1001)));
    let third = load(&b, second.end).unwrap();
    assert!(matches!(third.value, Value::Int(-2)));
    assert!(matches!(
        load(b"\x8a\x01\xff.", 0).unwrap().value,
        Value::Int(-1)
    ));
    let e = error(b"\x8a\x11\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00.");
    assert!(e.reason.contains("too large"), "{e}");
}

#[test]
fn no_global_but_torch_s_is_imported() {
    let e = error(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.");
    assert_eq!(e.offset, 2, "{e}");
    assert!(e.to_string().contains("refusing GLOBAL `os.system`"), "{e}");
    for hostile in [
        &b"cbuiltins\neval\n"[..],
        b"c__builtin__\ngetattr\n",
        b"ctorch\nload\n",
        b"ctorch._utils\n_rebuild_parameter\n",
        b"ccollections\nOrderedDict",
    ] {
        let e = error(hostile);
        assert_eq!(e.offset, 0, "{e}");
    }
}

#[test]
fn opcodes_torch_does_not_write_are_refused() {
    // STRING, INST, OBJ, NEWOBJ, STACK_GLOBAL, EXT1, BINSTRING, POP, DUP, FLOAT.
    for (bytes, op) in [
        (&b"S'x'\n."[..], 'S'),
        (b"(ios\nsystem\n.", 'i'),
        (b"(o.", 'o'),
        (b")\x81.", '\u{81}'),
        (b"\x93.", '\u{93}'),
        (b"\x82\x01.", '\u{82}'),
        (b"T\x01\x00\x00\x00x.", 'T'),
        (b"N0.", '0'),
        (b"N2.", '2'),
        (b"F1.0\n.", 'F'),
    ] {
        let e = error(bytes);
        assert!(
            e.reason.contains(&format!("0x{:02x}", op as u32)),
            "{op:?}: {e}"
        );
    }
    assert!(error(b"\x80\x04N.").reason.contains("protocol 4"));
}

#[test]
fn reduce_persid_and_build_take_only_torch_s_shapes() {
    // FloatStorage() called, OrderedDict called with arguments, a tensor from an int.
    for bytes in [
        &b"ctorch\nFloatStorage\n)R."[..],
        b"ccollections\nOrderedDict\nK\x01\x85R.",
        b"ctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)))\x89NtR.",
        b"X\x01\x00\x00\x00xQ.",
        b"(X\x04\x00\x00\x00fileNNNNNtQ.",
        b"]Nb.",
    ] {
        let e = error(bytes);
        assert!(
            ["REDUCE", "_rebuild_tensor_v2", "persistent id", "BUILD"]
                .iter()
                .any(|w| e.reason.contains(w)),
            "{e}"
        );
    }
    // A negative stride.
    let mut neg = STATE.to_vec();
    let at = STATE.windows(2).position(|w| w == b"K\x02").unwrap() + 5;
    neg.splice(at..at + 2, *b"J\xff\xff\xff\xff");
    let e = error(&neg);
    assert!(e.reason.contains("not a non-negative integer"), "{e}");
}

#[test]
fn broken_structure_is_an_error() {
    let cases: [(&[u8], &str); 9] = [
        (b"", "ends"),
        (b"N", "ends"),
        (b".", "stack is empty"),
        (b"(N.", "values left"),
        (b"t.", "no MARK"),
        (b"(\x85.", "stack is empty"),
        (b"h\x05.", "memo entry 5"),
        (b"X\xff\xff\xff\xff.", "ends"),
        (b"}(NNNu.", "key and no value"),
    ];
    for (bytes, want) in cases {
        let e = error(bytes);
        assert!(e.reason.contains(want), "{bytes:?}: {e}");
    }
    assert!(error(b"}(NNu.").reason.contains("dict key is None"));
    assert!(error(b"c\xff\xfe\nx\n").reason.contains("not UTF-8"));
}

#[test]
fn nesting_is_bounded_and_self_reference_is_harmless() {
    let mut deep = b")".to_vec();
    deep.extend(std::iter::repeat_n(0x85, 10_000));
    deep.push(b'.');
    assert!(error(&deep).reason.contains("nest deeper"));
    // A list that contains itself, and a dict that contains itself.
    let l = load(b"]q\x00h\x00a.", 0).unwrap();
    assert_eq!(l.list(&l.value).unwrap().len(), 1);
    let d = load(b"}q\x00X\x01\x00\x00\x00kh\x00s.", 0).unwrap();
    assert!(matches!(
        d.dict(&d.value).unwrap().get("k"),
        Some(Value::Dict(0))
    ));
}

#[test]
fn truncated_or_corrupt_input_never_panics() {
    for n in 0..STATE.len() {
        assert!(load(&STATE[..n], 0).is_err(), "{n} bytes");
    }
    // Every byte replaced by a few telling values: each is read or refused, none panics
    // (most are refused; a changed character inside a string is still a valid pickle).
    let (mut accepted, mut tried) = (0, 0);
    for i in 0..STATE.len() {
        for v in [0x00, 0xff, b'h', b'R', b'(', b'.', b'u', 0x85] {
            let mut b = STATE.to_vec();
            b[i] = v;
            tried += 1;
            accepted += usize::from(load(&b, 0).is_ok());
        }
    }
    assert!(accepted * 4 < tried, "{accepted} of {tried}");
}
