//! An in-memory snapshot of one collection: exact search over all vectors, and an HNSW
//! index (`hnsw_rs`) built on first approximate search.

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
pub use mediaflow_vecmath::{dot, normalised};

/// Collections at least this large are searched approximately under `mode: auto`. An exact
/// scan of 384-d vectors takes about 2 ms for 20,000 and 6 ms for 50,000 (one core), and
/// the HNSW index costs a rebuild after every change to the collection (31 s for 20,000,
/// 89 s for 50,000 on 2 cores) for a search only ~2× faster at 50,000, so exact stays the
/// default far up (`benches/benches/vectors.rs`).
pub const EXACT_BELOW: usize = 200_000;

/// HNSW parameters: 16 links a node (32 on the bottom layer), a candidate list of 100
/// while building, and at least 128 while searching (more for larger `k`). Recall@10
/// against the exact scan: 0.99 on 10,000 clustered 48-d vectors
/// (`tests::approximate_search_finds_the_exact_neighbours`), 0.82 and 0.62 on 20,000 and
/// 50,000 384-d vectors in tight clusters of near-equidistant points (the benchmark's
/// hard case).
const LINKS: usize = 16;
const EF_BUILD: usize = 100;
const EF_SEARCH: usize = 128;

/// Cosine distance for L2-normalised vectors: 1 − dot, clamped (rounding can push a dot
/// product of a vector with itself past 1).
#[derive(Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// One collection's vectors as read at `revision`.
pub struct Snapshot {
    pub revision: i64,
    pub dims: usize,
    pub ids: Vec<String>,
    /// Row-major, normalised.
    data: Vec<f32>,
    ann: std::sync::OnceLock<Hnsw<'static, f32, UnitCosine>>,
}

impl Snapshot {
    /// Rows whose length is not `dims` are left out (they cannot come from this model).
    pub fn new(revision: i64, dims: usize, rows: Vec<(String, Vec<f32>)>) -> Snapshot {
        let mut ids = Vec::with_capacity(rows.len());
        let mut data = Vec::with_capacity(rows.len() * dims);
        for (id, v) in rows {
            if v.len() == dims {
                ids.push(id);
                data.extend(normalised(&v));
            }
        }
        Snapshot {
            revision,
            dims,
            ids,
            data,
            ann: std::sync::OnceLock::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    /// The `k` best rows by cosine, best first: every row compared.
    pub fn exact(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut scored: Vec<(usize, f32)> = (0..self.len())
            .map(|i| (i, dot(self.row(i), query)))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }

    /// Builds the HNSW index (CPU-bound: call it off the async runtime).
    pub fn build_index(&self) {
        self.ann.get_or_init(|| {
            let n = self.len();
            let layers = 16.min(((n.max(2)) as f32).ln().ceil() as usize).max(1);
            let index = Hnsw::new(LINKS, n, layers, EF_BUILD, UnitCosine);
            let rows: Vec<(&[f32], usize)> = (0..n).map(|i| (self.row(i), i)).collect();
            index.parallel_insert_slice(&rows);
            index
        });
    }

    /// The `k` best rows found by the HNSW index (built first if needed), best first.
    pub fn approximate(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        self.build_index();
        let Some(index) = self.ann.get() else {
            return self.exact(query, k);
        };
        let k = k.min(self.len());
        if k == 0 {
            return Vec::new();
        }
        let mut found: Vec<(usize, f32)> = index
            .search(query, k, EF_SEARCH.max(2 * k))
            .into_iter()
            .filter(|n| n.d_id < self.len())
            .map(|n| (n.d_id, dot(self.row(n.d_id), query)))
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(k);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic vectors in clusters, as sentence embeddings are: a few hundred topic
    /// centres, each row a centre plus noise (a small LCG; no rand needed).
    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let centres: Vec<Vec<f32>> = (0..300)
            .map(|_| (0..dims).map(|_| next()).collect())
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % centres.len()];
                let v = c.iter().map(|x| x + 0.6 * next()).collect();
                (format!("doc-{i:06}"), v)
            })
            .collect()
    }

    #[test]
    fn exact_search_ranks_by_cosine() {
        let rows = vec![
            ("a".to_owned(), vec![1.0, 0.0]),
            ("b".to_owned(), vec![0.6, 0.8]),
            ("c".to_owned(), vec![0.0, 5.0]),
            ("short".to_owned(), vec![1.0]),
        ];
        let s = Snapshot::new(1, 2, rows);
        assert_eq!(s.len(), 3, "a row of the wrong size is left out");
        let hits = s.exact(&normalised(&[0.0, 1.0]), 2);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![2, 1]);
        assert!((hits[0].1 - 1.0).abs() < 1e-6 && (hits[1].1 - 0.8).abs() < 1e-6);
        assert_eq!(s.exact(&[1.0, 0.0], 10).len(), 3);
    }

    #[test]
    fn approximate_search_finds_the_exact_neighbours() {
        let (n, dims, k) = (10_000, 48, 10);
        let s = Snapshot::new(1, dims, clustered(n, dims, 7));
        let queries: Vec<Vec<f32>> = clustered(200, dims, 99)
            .into_iter()
            .map(|(_, v)| normalised(&v))
            .collect();
        let mut found = 0;
        for q in &queries {
            let exact: Vec<usize> = s.exact(q, k).into_iter().map(|h| h.0).collect();
            let approx = s.approximate(q, k);
            found += approx.iter().filter(|h| exact.contains(&h.0)).count();
        }
        let recall = found as f64 / (queries.len() * k) as f64;
        println!("HNSW recall@{k} against exact on {n} vectors: {recall:.4}");
        assert!(recall >= 0.95, "recall {recall}");
    }
}
