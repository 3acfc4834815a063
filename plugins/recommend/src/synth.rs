//! A synthetic newsroom: articles in sections with headlines and standfirsts, readers with
//! favourite sections and a long-tailed appetite, and reading events that follow both —
//! popular stories are read much more than the rest (Zipf), fresh ones more than old ones.
//! The README's example and the benchmarks' large data sets come from here, so the
//! repository ships no third-party data.

use std::io::Write;
use std::path::Path;

use mediaflow_store::{Interaction, ItemRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How big a newsroom to make.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub users: usize,
    pub items: usize,
    pub events: usize,
    /// Days the events span, ending at `end` (Unix ms).
    pub days: u32,
    pub end: i64,
    pub seed: u64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            users: 300,
            items: 400,
            events: 12_000,
            days: 14,
            end: 1_764_547_200_000, // 2025-12-01T00:00:00Z
            seed: 7,
        }
    }
}

struct Section {
    name: &'static str,
    subjects: &'static [&'static str],
    events: &'static [&'static str],
    tags: &'static [&'static str],
}

const SECTIONS: &[Section] = &[
    Section {
        name: "politics",
        subjects: &[
            "Parliament",
            "The prime minister",
            "Opposition leaders",
            "The cabinet",
            "Voters",
            "The election commission",
        ],
        events: &[
            "debates the budget bill",
            "faces a confidence vote",
            "unveils a housing plan",
            "clashes over immigration reform",
            "promises tax cuts",
            "calls an early election",
        ],
        tags: &["election", "parliament", "policy", "government"],
    },
    Section {
        name: "sport",
        subjects: &[
            "The national football team",
            "The cricket side",
            "A teenage sprinter",
            "The rugby captain",
            "The league champions",
            "The tennis star",
        ],
        events: &[
            "wins the cup final",
            "suffers a shock defeat",
            "breaks the national record",
            "signs a new coach",
            "returns from injury",
            "reaches the semi-final",
        ],
        tags: &["football", "cricket", "athletics", "rugby", "tennis"],
    },
    Section {
        name: "business",
        subjects: &[
            "The central bank",
            "Shares in the mining giant",
            "The retail chain",
            "Small businesses",
            "The airline",
            "Tech investors",
        ],
        events: &[
            "raises interest rates",
            "reports record profits",
            "cuts hundreds of jobs",
            "announces a merger",
            "warns of inflation",
            "falls on the stock market",
        ],
        tags: &["markets", "economy", "jobs", "interest rates"],
    },
    Section {
        name: "culture",
        subjects: &[
            "The film festival",
            "A debut novelist",
            "The national gallery",
            "The orchestra",
            "A streaming drama",
            "The music awards",
        ],
        events: &[
            "opens with a premiere",
            "wins a literary prize",
            "unveils a new exhibition",
            "announces its new season",
            "tops the ratings",
            "celebrates local artists",
        ],
        tags: &["film", "books", "music", "art", "television"],
    },
    Section {
        name: "science",
        subjects: &[
            "Astronomers",
            "Marine biologists",
            "Climate researchers",
            "A university lab",
            "Space agency engineers",
            "Geologists",
        ],
        events: &[
            "discover a distant planet",
            "map the coral reef",
            "report record ocean temperatures",
            "develop a new vaccine",
            "launch a weather satellite",
            "measure a major earthquake",
        ],
        tags: &["space", "climate", "research", "oceans"],
    },
    Section {
        name: "health",
        subjects: &[
            "Hospital emergency departments",
            "The health minister",
            "Doctors",
            "Nurses",
            "Mental health services",
            "A new clinic",
        ],
        events: &[
            "struggle with winter flu",
            "announce funding for rural care",
            "warn about waiting lists",
            "go on strike over pay",
            "expand telehealth",
            "open in the suburbs",
        ],
        tags: &["hospitals", "medicine", "flu", "mental health"],
    },
];

/// Makes the catalogue and the events.
pub fn generate(o: &SynthOptions) -> (Vec<ItemRecord>, Vec<Interaction>) {
    let mut rng = StdRng::seed_from_u64(o.seed);
    let day = 86_400_000i64;
    let start = o.end - i64::from(o.days.max(1)) * day;
    let span = (o.end - start).max(1);
    // Articles: a section, a time, a place in the popularity tail.
    let mut items = Vec::with_capacity(o.items);
    let mut by_section: Vec<Vec<(usize, f64)>> = vec![Vec::new(); SECTIONS.len()];
    for i in 0..o.items.max(1) {
        let s = rng.random_range(0..SECTIONS.len());
        let sec = &SECTIONS[s];
        let subject = sec.subjects[rng.random_range(0..sec.subjects.len())];
        let event = sec.events[rng.random_range(0..sec.events.len())];
        let other = sec.events[rng.random_range(0..sec.events.len())];
        // Published a little before the events start, up to the end.
        let published = start - 2 * day + rng.random_range(0..span + 2 * day);
        let mut tags: Vec<String> = (0..rng.random_range(1..=2))
            .map(|_| sec.tags[rng.random_range(0..sec.tags.len())].to_owned())
            .collect();
        tags.dedup();
        items.push(ItemRecord {
            id: format!("a{i:05}"),
            title: Some(format!("{subject} {event}")),
            body: Some(format!(
                "{subject} {event}, our {} desk reports. Earlier this week observers said it {other}.",
                sec.name
            )),
            published_at: Some(published),
            section: Some(sec.name.to_owned()),
            tags,
        });
        // Zipf: the r-th most popular story of a section is read ∝ 1/r.
        let rank = by_section[s].len() + 1;
        by_section[s].push((i, 1.0 / (rank as f64).powf(1.05)));
    }
    let cumulative: Vec<(Vec<usize>, Vec<f64>)> = by_section
        .iter()
        .map(|list| {
            let mut acc = 0.0;
            let cum = list
                .iter()
                .map(|(_, w)| {
                    acc += w;
                    acc
                })
                .collect();
            (list.iter().map(|(i, _)| *i).collect(), cum)
        })
        .collect();
    // Readers: one or two favourite sections, and a long-tailed appetite (log-normal).
    let users: Vec<(usize, usize, f64)> = (0..o.users.max(1))
        .map(|_| {
            let a = rng.random_range(0..SECTIONS.len());
            let b = rng.random_range(0..SECTIONS.len());
            let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
            (a, b, (1.1 * z).exp())
        })
        .collect();
    let mut appetite = Vec::with_capacity(users.len());
    let mut acc = 0.0;
    for u in &users {
        acc += u.2;
        appetite.push(acc);
    }
    let pick = |cum: &[f64], x: f64| cum.partition_point(|&c| c < x).min(cum.len() - 1);
    let kinds = [
        ("view", 0.8),
        ("like", 0.92),
        ("share", 0.97),
        ("comment", 1.0),
    ];
    let mut events = Vec::with_capacity(o.events);
    let mut tries = 0usize;
    while events.len() < o.events && tries < o.events * 50 {
        tries += 1;
        let u = pick(&appetite, rng.random::<f64>() * acc);
        let (fav_a, fav_b, _) = users[u];
        let s = match rng.random::<f64>() {
            x if x < 0.55 => fav_a,
            x if x < 0.85 => fav_b,
            _ => rng.random_range(0..SECTIONS.len()),
        };
        let (ids, cum) = &cumulative[s];
        let Some(&total) = cum.last() else { continue };
        let item = ids[pick(cum, rng.random::<f64>() * total)];
        let ts = start + rng.random_range(0..span);
        let published = items[item].published_at.unwrap_or(start);
        // Nobody reads a story before it is out; interest fades over a couple of days.
        if published > ts
            || rng.random::<f64>() > (-((ts - published) as f64) / (2.5 * day as f64)).exp()
        {
            continue;
        }
        let r = rng.random::<f64>();
        let kind = kinds
            .iter()
            .find(|k| r < k.1)
            .map(|k| k.0)
            .unwrap_or("view");
        events.push(Interaction {
            user: format!("u{u:05}"),
            item: items[item].id.clone(),
            kind: kind.to_owned(),
            ts: ts / 1000 * 1000,
            weight: 1.0,
            source: None,
        });
    }
    events.sort_by_key(|e| e.ts);
    (items, events)
}

/// Writes `events.csv` (`user,item,kind,time,weight`, time in RFC 3339) and `items.jsonl`.
pub fn write(dir: &Path, items: &[ItemRecord], events: &[Interaction]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("items.jsonl"))?);
    for it in items {
        let line = serde_json::json!({
            "id": it.id,
            "title": it.title,
            "body": it.body,
            "published_at": it.published_at.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339()),
            "section": it.section,
            "tags": it.tags,
        });
        writeln!(f, "{line}")?;
    }
    f.flush()?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("events.csv"))?);
    writeln!(f, "user,item,kind,time,weight")?;
    for e in events {
        let time = chrono::DateTime::from_timestamp_millis(e.ts)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        writeln!(f, "{},{},{},{},{}", e.user, e.item, e.kind, time, e.weight)?;
    }
    f.flush()
}
