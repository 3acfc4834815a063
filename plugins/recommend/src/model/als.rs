//! Matrix factorisation for implicit feedback: alternating least squares with confidence
//! weighting (Hu, Koren and Volinsky 2008). Every (user, item) cell is a 0/1 preference;
//! a read item is a 1 with confidence `1 + alpha · weight`, the rest 0 with confidence 1.
//! Each half-sweep solves every user's (then item's) least-squares problem by a few steps
//! of conjugate gradient warm-started from the last sweep (Takács, Pilászy and Tikk 2011),
//! so a sweep costs O(events · factors + users · factors²) instead of a factors³ solve per
//! user. `YᵀY` is formed once per half-sweep with nalgebra; users (items) are solved in
//! parallel on rayon's threads.

use nalgebra::{DMatrix, DMatrixView, DVector, DVectorView, DVectorViewMut};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sprs::CsMat;

use mediaflow_vecmath::{axpy, dot};

use crate::data::{row, History, Matrix};

/// Settings of ALS.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlsParams {
    /// Latent factors per user and item.
    pub factors: usize,
    /// L2 regularisation.
    #[schemars(range(min = 0.0))]
    pub regularization: f32,
    /// Confidence of a read item: 1 + alpha · weight.
    #[schemars(range(min = 0.0))]
    pub alpha: f32,
    /// Sweeps over users and items.
    pub iterations: usize,
    /// Conjugate-gradient steps per solve.
    pub cg_steps: usize,
    /// Seed of the initial factors: the same data and seed give the same model.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            regularization: 0.1,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Als {
    pub params: AlsParams,
    /// Row-major: user u's factors are `users[u·k .. (u+1)·k]`.
    pub users: Vec<f32>,
    pub items: Vec<f32>,
    /// `YᵀY + λI` of the final item factors, row-major k × k: for folding in users the
    /// model has not seen.
    pub gram: Vec<f32>,
}

/// `YᵀY + λI` of row-major factors `y` (n × k), as a k × k matrix.
fn gram(y: &[f32], k: usize, reg: f32) -> DMatrix<f32> {
    // Row-major n × k is column-major k × n: column j is entity j's vector.
    let yt = DMatrixView::from_slice(y, k, y.len() / k.max(1));
    let mut g = yt * yt.transpose();
    for d in 0..k {
        g[(d, d)] += reg;
    }
    g
}

/// `out = g · v` (nalgebra's matrix–vector product).
fn gemv(g: &DMatrix<f32>, v: &[f32], out: &mut [f32]) {
    let k = v.len();
    let mut o = DVectorViewMut::from_slice(out, k);
    o.gemv(1.0, g, &DVectorView::from_slice(v, k), 0.0);
}

/// Scratch vectors of one solve, kept per thread.
#[derive(Default)]
struct Scratch {
    r: Vec<f32>,
    dir: Vec<f32>,
    ap: Vec<f32>,
}

/// One least-squares solve for the entity with the events `cells` (index, weight), by
/// conjugate gradient from `x`.
fn solve(
    x: &mut [f32],
    cells: impl Iterator<Item = (usize, f32)> + Clone,
    y: &[f32],
    g: &DMatrix<f32>,
    p: &AlsParams,
    s: &mut Scratch,
) {
    let k = x.len();
    let factor = |i: usize| &y[i * k..(i + 1) * k];
    s.r.resize(k, 0.0);
    s.dir.resize(k, 0.0);
    s.ap.resize(k, 0.0);
    let Scratch { r, dir, ap } = s;
    // r = Yᵀ C p − (YᵀCY + λI) x
    gemv(g, x, r);
    r.iter_mut().for_each(|v| *v = -*v);
    for (i, w) in cells.clone() {
        let c = 1.0 + p.alpha * w;
        let yi = factor(i);
        axpy(c - (c - 1.0) * dot(yi, x), yi, r);
    }
    dir.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..p.cg_steps {
        if rs_old < 1e-20 {
            break;
        }
        gemv(g, dir, ap);
        for (i, w) in cells.clone() {
            let c = 1.0 + p.alpha * w;
            let yi = factor(i);
            axpy((c - 1.0) * dot(yi, dir), yi, ap);
        }
        let step = rs_old / dot(dir, ap);
        if !step.is_finite() {
            break;
        }
        axpy(step, dir, x);
        axpy(-step, ap, r);
        let rs_new = dot(r, r);
        let beta = rs_new / rs_old;
        for (d, r) in dir.iter_mut().zip(r.iter()) {
            *d = r + beta * *d;
        }
        rs_old = rs_new;
    }
}

/// Solves every row of `m` (users, or items for the transpose) against the factors `y`.
fn sweep(x: &mut [f32], y: &[f32], m: &CsMat<f32>, p: &AlsParams) {
    let k = p.factors;
    let g = gram(y, k, p.regularization);
    x.par_chunks_mut(k)
        .enumerate()
        .for_each_init(Scratch::default, |s, (u, xu)| {
            solve(xu, row(m, u), y, &g, p, s)
        });
}

impl Als {
    /// Trains on `m`; `stop` is asked before each sweep, and a `true` ends training with
    /// [`Stopped`].
    pub fn fit(m: &Matrix, params: &AlsParams, stop: super::Stop) -> Result<Als, super::Stopped> {
        let mut p = params.clone();
        p.factors = p.factors.max(1);
        let k = p.factors;
        let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed);
        let mut init =
            |n: usize| -> Vec<f32> { (0..n * k).map(|_| rng.random::<f32>() * 0.01).collect() };
        let mut users = init(m.rows.rows());
        let mut items = init(m.cols.rows());
        for _ in 0..p.iterations {
            if stop() {
                return Err(super::Stopped);
            }
            sweep(&mut users, &items, &m.rows, &p);
            sweep(&mut items, &users, &m.cols, &p);
        }
        let gram = gram(&items, k, p.regularization);
        Ok(Als {
            params: p,
            users,
            items,
            gram: gram.transpose().as_slice().to_vec(),
        })
    }

    fn k(&self) -> usize {
        self.params.factors
    }

    /// The user's factors: learnt in training, or folded in from their history (a user who
    /// arrived after training, or an item's "more like this").
    fn user_vector(&self, user: Option<u32>, history: &History) -> DVector<f32> {
        let k = self.k();
        if let Some(u) = user {
            if let Some(v) = self.users.get(u as usize * k..(u as usize + 1) * k) {
                return DVector::from_column_slice(v);
            }
        }
        let mut x = vec![0f32; k];
        let g = DMatrix::from_row_slice(k, k, &self.gram);
        let cells: Vec<(usize, f32)> = history
            .events
            .iter()
            .filter(|e| (e.0 as usize) < self.items.len() / k)
            .map(|e| (e.0 as usize, e.1))
            .collect();
        let mut p = self.params.clone();
        p.cg_steps = p.cg_steps.max(k.min(16));
        solve(
            &mut x,
            cells.iter().copied(),
            &self.items,
            &g,
            &p,
            &mut Scratch::default(),
        );
        DVector::from_vec(x)
    }

    pub fn score(&self, user: Option<u32>, history: &History, out: &mut [f32]) {
        let k = self.k();
        let n = self.items.len() / k;
        let x = self.user_vector(user, history);
        let y = DMatrixView::from_slice(&self.items, k, n);
        let mut o = DVectorViewMut::from_slice(&mut out[..n], n);
        o.gemv_tr(1.0, &y, &x, 1.0);
    }

    /// The item the user read whose factors are closest (cosine) to `item`'s.
    pub fn because(&self, history: &History, item: u32) -> Option<u32> {
        let k = self.k();
        let v = |i: u32| self.items.get(i as usize * k..(i as usize + 1) * k);
        let target = DVectorView::from_slice(v(item)?, k);
        history
            .items()
            .filter(|&i| i != item)
            .filter_map(|i| {
                let f = DVectorView::from_slice(v(i)?, k);
                let norm = f.norm() * target.norm();
                (norm > 0.0).then(|| (i, f.dot(&target) / norm))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}
