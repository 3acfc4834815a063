//! The few dense-vector kernels mediaflow's vector search, embeddings and recommender share:
//! a dot product the compiler can vectorise, `y += a·x`, the Euclidean norm and unit
//! scaling. No dependencies, so any crate can take it.

/// `a · b` over the shorter of the two, in eight independent lanes so the compiler can use
/// SIMD (a plain iterator sum must add in order and cannot).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `y += a · x` (over the shorter of the two).
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The Euclidean length of `v`.
#[inline]
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Scales `v` to unit length in place. A zero vector, or one whose length is not finite,
/// is left as it is.
pub fn normalise(v: &mut [f32]) {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// `v` scaled to unit length (see [`normalise`]).
pub fn normalised(v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    normalise(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_products_of_any_length() {
        for n in [0usize, 1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - want).abs() <= 1e-3 * want.abs().max(1.0),
                "{n}"
            );
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }

    #[test]
    fn axpy_adds_a_scaled_vector() {
        let mut y = vec![1.0, 1.0, 1.0];
        axpy(2.0, &[1.0, 2.0, 3.0], &mut y);
        assert_eq!(y, [3.0, 5.0, 7.0]);
    }

    #[test]
    fn unit_length() {
        let v = normalised(&[3.0, 4.0]);
        assert_eq!(v, [0.6, 0.8]);
        assert!((norm(&v) - 1.0).abs() < 1e-6);
        assert_eq!(normalised(&[0.0, 0.0]), [0.0, 0.0]);
        let mut inf = [f32::INFINITY, 1.0];
        normalise(&mut inf);
        assert_eq!(inf[1], 1.0);
    }
}
