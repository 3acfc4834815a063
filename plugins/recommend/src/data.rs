//! Events as the models see them: users and items interned to dense indices, one aggregated
//! event per (user, item), the user × item matrix in both orientations, and the
//! leave-last-out split of the offline evaluation.

use std::collections::HashMap;

use mediaflow_store::{Interaction, ItemRecord};
use serde::{Deserialize, Serialize};
use sprs::{CsMat, TriMat};

/// Milliseconds in a day.
pub const DAY_MS: f64 = 86_400_000.0;

/// Names interned to dense indices, in first-seen order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ids {
    names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl Ids {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(String::as_str).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Rebuilds the lookup after deserialising (it is not stored).
    pub fn reindex(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
    }
}

/// What the models know of an item besides who read it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ItemMeta {
    pub title: Option<String>,
    pub section: Option<String>,
    pub published_at: Option<i64>,
    pub tags: Vec<String>,
}

impl ItemMeta {
    /// The item as readers know it: its title, else its id.
    pub fn label<'a>(&'a self, id: &'a str) -> &'a str {
        self.title
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or(id)
    }
}

/// All events of one user with one item, folded into one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    /// The sum of the events' weights, each times its kind's weight.
    pub weight: f32,
    /// The latest event's time (Unix ms).
    pub ts: i64,
}

/// How much each kind of event counts (`view: 1, like: 3, share: 5`); kinds not named
/// count 1. Each event's own weight is multiplied by its kind's.
pub type KindWeights = HashMap<String, f32>;

/// Users, items and their aggregated events.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub users: Ids,
    pub items: Ids,
    /// Indexed by item.
    pub catalogue: Vec<ItemMeta>,
    /// One per (user, item), ordered by user, then time.
    pub events: Vec<Event>,
}

impl Dataset {
    /// Builds the dataset from stored events and the catalogue. Items of the catalogue that
    /// nobody has read yet are items too (new articles); events of items the catalogue does
    /// not know make items without metadata.
    pub fn new(events: &[Interaction], items: &[ItemRecord], kinds: &KindWeights) -> Dataset {
        let mut d = Dataset::default();
        for it in items {
            let i = d.items.intern(&it.id) as usize;
            if d.catalogue.len() <= i {
                d.catalogue.resize(i + 1, ItemMeta::default());
            }
            d.catalogue[i] = ItemMeta {
                title: it.title.clone(),
                section: it.section.clone(),
                published_at: it.published_at,
                tags: it.tags.clone(),
            };
        }
        let mut folded: HashMap<(u32, u32), (f32, i64)> = HashMap::new();
        for e in events {
            let u = d.users.intern(&e.user);
            let i = d.items.intern(&e.item);
            let w = (e.weight as f32) * kinds.get(&e.kind).copied().unwrap_or(1.0);
            let slot = folded.entry((u, i)).or_insert((0.0, i64::MIN));
            slot.0 += w;
            slot.1 = slot.1.max(e.ts);
        }
        d.catalogue.resize(d.items.len(), ItemMeta::default());
        d.events = folded
            .into_iter()
            .filter(|(_, (w, _))| *w > 0.0 && w.is_finite())
            .map(|((user, item), (weight, ts))| Event {
                user,
                item,
                weight,
                ts,
            })
            .collect();
        d.sort();
        d
    }

    fn sort(&mut self) {
        let items = &self.items;
        self.events.sort_unstable_by(|a, b| {
            (a.user, a.ts)
                .cmp(&(b.user, b.ts))
                .then_with(|| items.name(a.item).cmp(items.name(b.item)))
        });
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// The newest event's time (0 without events).
    pub fn latest(&self) -> i64 {
        self.events.iter().map(|e| e.ts).max().unwrap_or(0)
    }

    /// The user × item matrix of event weights, and its transpose.
    pub fn matrix(&self) -> Matrix {
        let mut tri = TriMat::with_capacity((self.n_users(), self.n_items()), self.events.len());
        for e in &self.events {
            tri.add_triplet(e.user as usize, e.item as usize, e.weight);
        }
        let rows: CsMat<f32> = tri.to_csr();
        let cols = rows.transpose_view().to_csr();
        Matrix { rows, cols }
    }

    /// Each user's events, oldest first.
    pub fn histories(&self) -> Vec<History> {
        let mut h = vec![History::default(); self.n_users()];
        for e in &self.events {
            h[e.user as usize].events.push((e.item, e.weight, e.ts));
        }
        h
    }

    /// Leave-last-out: each user with at least two items loses the item of their latest
    /// event (ties broken by item id) to the test set, and every event with it. Users with
    /// one item stay in training only. Returns the training set and the (user, item) pairs
    /// to find.
    pub fn split_last(&self) -> (Dataset, Vec<(u32, u32)>) {
        let mut train = Dataset {
            users: self.users.clone(),
            items: self.items.clone(),
            catalogue: self.catalogue.clone(),
            events: Vec::with_capacity(self.events.len()),
        };
        let mut test = Vec::new();
        let mut start = 0;
        while start < self.events.len() {
            let user = self.events[start].user;
            let mut end = start;
            while end < self.events.len() && self.events[end].user == user {
                end += 1;
            }
            let mine = &self.events[start..end];
            if mine.len() >= 2 {
                // Sorted by time then item id, so the last is the latest.
                let held = mine[mine.len() - 1];
                test.push((user, held.item));
                train
                    .events
                    .extend(mine.iter().filter(|e| e.item != held.item));
            } else {
                train.events.extend_from_slice(mine);
            }
            start = end;
        }
        (train, test)
    }
}

/// One user's events, oldest first: (item, weight, time).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<(u32, f32, i64)>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn items(&self) -> impl Iterator<Item = u32> + '_ {
        self.events.iter().map(|e| e.0)
    }
}

/// The user × item matrix (`rows`, CSR) and the item × user one (`cols`).
pub struct Matrix {
    pub rows: CsMat<f32>,
    pub cols: CsMat<f32>,
}

/// The (index, weight) pairs of row `r` of a CSR matrix (none past the last row).
pub fn row(m: &CsMat<f32>, r: usize) -> impl Iterator<Item = (usize, f32)> + Clone + '_ {
    let range = if r < m.outer_dims() {
        m.indptr().outer_inds_sz(r)
    } else {
        0..0
    };
    let idx = &m.indices()[range.clone()];
    let data = &m.data()[range];
    idx.iter().copied().zip(data.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: &str, item: &str, kind: &str, ts: i64) -> Interaction {
        Interaction {
            user: user.into(),
            item: item.into(),
            kind: kind.into(),
            ts,
            weight: 1.0,
            source: None,
        }
    }

    #[test]
    fn duplicates_fold_into_one_event_weighted_by_kind() {
        let kinds: KindWeights = [("like".to_owned(), 3.0)].into();
        let d = Dataset::new(
            &[
                ev("a", "x", "view", 1),
                ev("a", "x", "like", 5),
                ev("a", "y", "view", 2),
            ],
            &[],
            &kinds,
        );
        assert_eq!(d.events.len(), 2);
        let x = d.items.get("x").unwrap();
        let e = d.events.iter().find(|e| e.item == x).unwrap();
        assert_eq!((e.weight, e.ts), (4.0, 5));
    }

    #[test]
    fn split_holds_out_the_latest_item_and_keeps_single_event_users_in_training() {
        let d = Dataset::new(
            &[
                ev("a", "x", "view", 1),
                ev("a", "y", "view", 9),
                ev("a", "x", "view", 3),
                ev("b", "x", "view", 4),
            ],
            &[],
            &KindWeights::new(),
        );
        let (train, test) = d.split_last();
        let (a, b) = (d.users.get("a").unwrap(), d.users.get("b").unwrap());
        assert_eq!(test, vec![(a, d.items.get("y").unwrap())]);
        assert!(train.events.iter().any(|e| e.user == b));
        assert!(train.events.iter().all(|e| !(e.user == a && e.item == 1)));
        assert_eq!(train.events.len(), 2);
    }
}
