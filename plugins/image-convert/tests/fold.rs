//! BatchNorm folding against the unfolded computation, and TensorFlow's SAME padding.

use mediaflow_image_convert::{fold_batch_norm, BatchNorm, Padding};

/// A direct 2-D convolution (one image, CHW), stride 1, zero padding `pad` on every side.
fn conv(x: &[f32], c: usize, hw: usize, w: &[f32], out: usize, k: usize, pad: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; out * hw * hw];
    for o in 0..out {
        for i in 0..hw {
            for j in 0..hw {
                let mut acc = 0.0;
                for ci in 0..c {
                    for a in 0..k {
                        for b in 0..k {
                            let (r, s) = (
                                (i + a) as isize - pad as isize,
                                (j + b) as isize - pad as isize,
                            );
                            if r < 0 || s < 0 || r >= hw as isize || s >= hw as isize {
                                continue;
                            }
                            acc += x[ci * hw * hw + r as usize * hw + s as usize]
                                * w[((o * c + ci) * k + a) * k + b];
                        }
                    }
                }
                y[(o * hw + i) * hw + j] = acc;
            }
        }
    }
    y
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn a_folded_conv_computes_conv_then_batch_norm() {
    let (c, hw, out, k, eps) = (2, 5, 3, 3, 1e-3);
    let x = values(c * hw * hw, 1);
    let w = values(out * c * k * k, 2);
    let bn = BatchNorm {
        gamma: vec![1.5, -0.5, 0.8],
        beta: vec![0.1, 0.2, -0.3],
        mean: vec![0.3, -1.0, 0.05],
        var: vec![0.5, 2.0, 0.01],
    };
    let plain = conv(&x, c, hw, &w, out, k, 1);
    let normalised: Vec<f32> = plain
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let o = i / (hw * hw);
            (v - bn.mean[o]) / (bn.var[o] + eps as f32).sqrt() * bn.gamma[o] + bn.beta[o]
        })
        .collect();
    let (wf, bf) = fold_batch_norm(&w, &bn, eps);
    assert_eq!((wf.len(), bf.len()), (w.len(), out));
    let folded: Vec<f32> = conv(&x, c, hw, &wf, out, k, 1)
        .iter()
        .enumerate()
        .map(|(i, &v)| v + bf[i / (hw * hw)])
        .collect();
    let worst = normalised
        .iter()
        .zip(&folded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");
    // Not trivially equal: the BatchNorm changes the conv's output.
    assert!(plain.iter().zip(&folded).any(|(a, b)| (a - b).abs() > 0.1));
}

#[test]
fn same_padding_puts_the_odd_pixel_after() {
    let same = Padding::TfSame;
    // Stride 2 on even sizes: one extra row/column after (k 3), or one before and two after.
    assert_eq!(same.pads(224, 3, 2), (0, 1));
    assert_eq!(same.pads(112, 5, 2), (1, 2));
    assert_eq!(same.pads(14, 5, 2), (1, 2));
    // Stride 1: symmetric, as PyTorch's.
    assert_eq!(same.pads(112, 3, 1), (1, 1));
    assert_eq!(same.pads(14, 5, 1), (2, 2));
    assert_eq!(same.pads(7, 1, 1), (0, 0));
    // Odd sizes with stride 2 need less.
    assert_eq!(same.pads(7, 3, 2), (1, 1));
    assert_eq!(Padding::Symmetric.pads(224, 3, 2), (1, 1));
    assert_eq!(Padding::Symmetric.pads(112, 5, 2), (2, 2));
}
