//! `text.keywords`: keywords (RAKE) and named-entity candidates from a story.
//!
//! Keywords: the text is cut into candidate phrases at stop words and punctuation; each word
//! scores degree/frequency and a phrase scores the sum of its words (Rose et al., 2010,
//! "Automatic keyword extraction from individual documents").
//! Entities: runs of capitalized words (`European Central Bank`, `New York`), joined across
//! `of`/`de`/`van`…, not counting a lone capitalized stop word that starts a sentence.

use std::collections::HashMap;

use mediaflow_sdk::*;

pub struct Keywords;

const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "last",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "new",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "said",
    "same",
    "says",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "two",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "year",
    "years",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "told",
    "may",
    "many",
    "much",
    "must",
    "per",
    "since",
    "still",
    "yet",
    "via",
];

/// Lowercase words that may sit inside a name.
const NAME_JOINERS: &[&str] = &[
    "of", "de", "da", "van", "von", "der", "del", "la", "le", "al", "bin",
];

/// Settings of `text.keywords`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The story to read.
    pub text: String,
    /// most keywords (and tags) to return
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 100))]
    pub max_keywords: u32,
    /// longest keyword phrase, in words
    #[serde(default = "three")]
    #[schemars(range(min = 1, max = 6))]
    pub max_words: u32,
    /// extra words that never start or end a keyword
    #[serde(default)]
    pub stopwords: Vec<String>,
}

fn ten() -> u32 {
    10
}

fn three() -> u32 {
    3
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// Key phrases, best first, lowercased, with their RAKE scores.
    pub keywords: Vec<Keyword>,
    /// Capitalized runs (names), most frequent first.
    pub entities: Vec<Entity>,
    /// The top entities, then keywords, without case-insensitive repeats.
    pub tags: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Keyword {
    pub term: String,
    pub score: f64,
}

#[derive(Serialize, JsonSchema)]
pub struct Entity {
    pub text: String,
    pub count: usize,
}

impl Plugin for Keywords {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>(
            "text.keywords",
            "1.0.0",
            "Extracts keywords (RAKE) and named-entity candidates from text",
        )
        .inputs(["text"])
        .outputs_from::<Output>()
    }

    fn check(config: &Config) -> Vec<Issue> {
        config
            .stopwords
            .iter()
            .enumerate()
            .filter(|(_, w)| w.trim().is_empty() || w.contains(char::is_whitespace))
            .map(|(i, w)| {
                Issue::new(
                    &format!("/stopwords/{i}"),
                    format!("`{w}` is not a single word"),
                )
            })
            .collect()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let text = &config.text;
        let max = config.max_keywords as usize;
        let extra: Vec<String> = config.stopwords.iter().map(|w| w.to_lowercase()).collect();
        let keywords = keywords(text, max, config.max_words as usize, &extra);
        let entities = entities(text);
        let tags: Vec<String> = entities
            .iter()
            .take(5)
            .map(|(e, _)| e.clone())
            .chain(keywords.iter().map(|(k, _)| k.clone()))
            .fold(Vec::new(), |mut acc, t| {
                if !acc.iter().any(|a: &String| a.eq_ignore_ascii_case(&t)) {
                    acc.push(t);
                }
                acc
            })
            .into_iter()
            .take(max)
            .collect();
        Ok(Output {
            keywords: keywords
                .into_iter()
                .map(|(term, s)| Keyword {
                    term,
                    score: (s * 100.0).round() / 100.0,
                })
                .collect(),
            entities: entities
                .into_iter()
                .map(|(text, count)| Entity { text, count })
                .collect(),
            tags,
        })
    }
}

export!(Keywords);

fn is_stop(word: &str, extra: &[String]) -> bool {
    STOPWORDS.contains(&word)
        || extra.iter().any(|e| e == word)
        || word.chars().all(|c| c.is_ascii_digit())
}

/// Tokens with sentence/phrase boundaries as `None`.
fn tokens(text: &str) -> Vec<Option<&str>> {
    let mut out = Vec::new();
    for raw in text.split_whitespace() {
        let boundary_before = raw.starts_with(|c: char| "\"'“‘(".contains(c));
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if boundary_before {
            out.push(None);
        }
        if !word.is_empty() {
            out.push(Some(word));
        }
        if raw.ends_with(|c: char| ".,;:!?)\"”’—".contains(c)) {
            out.push(None);
        }
    }
    out
}

/// The `max` best phrases with their scores.
pub fn keywords(text: &str, max: usize, max_words: usize, extra: &[String]) -> Vec<(String, f64)> {
    // Phrases end at stop words and punctuation, and where capitalization changes
    // ("European Central Bank | raised interest rates"). A capitalized stop word inside a
    // sentence belongs to a name ("New York").
    let mut phrases: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_caps = false;
    let mut sentence_start = true;
    for t in tokens(text) {
        let Some(word) = t else {
            if !current.is_empty() {
                phrases.push(std::mem::take(&mut current));
            }
            sentence_start = true;
            continue;
        };
        let lower = word.to_lowercase();
        let caps = capitalized(word) && !sentence_start;
        let content = (caps || !is_stop(&lower, extra)) && lower.chars().count() > 1;
        if !current.is_empty() && (!content || caps != current_caps) {
            phrases.push(std::mem::take(&mut current));
        }
        if content {
            if current.is_empty() {
                current_caps = caps || (capitalized(word) && !is_stop(&lower, extra));
            }
            current.push(lower);
        }
        sentence_start = false;
    }
    if !current.is_empty() {
        phrases.push(current);
    }
    phrases.retain(|p| p.len() <= max_words);
    let mut freq: HashMap<&str, f64> = HashMap::new();
    let mut degree: HashMap<&str, f64> = HashMap::new();
    for p in &phrases {
        for w in p {
            *freq.entry(w).or_default() += 1.0;
            *degree.entry(w).or_default() += p.len() as f64;
        }
    }
    let mut scored: Vec<(String, f64, usize)> = Vec::new();
    for (pos, p) in phrases.iter().enumerate() {
        let phrase = p.join(" ");
        if scored.iter().any(|(s, _, _)| *s == phrase) {
            continue;
        }
        let score = p
            .iter()
            .map(|w| degree[w.as_str()] / freq[w.as_str()])
            .sum::<f64>();
        // Phrases that recur matter more in news copy.
        let repeats = phrases.iter().filter(|q| q.join(" ") == phrase).count() as f64;
        scored.push((phrase, score * repeats.sqrt(), pos));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    scored
        .into_iter()
        .take(max)
        .map(|(p, s, _)| (p, s))
        .collect()
}

fn capitalized(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// Capitalized runs, most frequent first (ties: first seen first).
pub fn entities(text: &str) -> Vec<(String, usize)> {
    let toks = tokens(text);
    let mut found: Vec<(String, usize, usize)> = Vec::new();
    let mut i = 0;
    let mut sentence_start = true;
    while i < toks.len() {
        let Some(w) = toks[i] else {
            sentence_start = true;
            i += 1;
            continue;
        };
        if !capitalized(w) {
            sentence_start = false;
            i += 1;
            continue;
        }
        let mut run = vec![w];
        let mut j = i + 1;
        while j < toks.len() {
            match toks[j] {
                Some(n) if capitalized(n) => run.push(n),
                Some(n)
                    if NAME_JOINERS.contains(&n)
                        && toks.get(j + 1).copied().flatten().is_some_and(capitalized) =>
                {
                    run.push(n)
                }
                _ => break,
            }
            j += 1;
        }
        // A capitalized stop word that opens a sentence ("The", "But") is not a name.
        while sentence_start
            && run
                .first()
                .is_some_and(|f| STOPWORDS.contains(&f.to_lowercase().as_str()))
        {
            run.remove(0);
        }
        let single_sentence_opener = sentence_start && run.len() == 1;
        if !run.is_empty() && !single_sentence_opener {
            let name = run.join(" ");
            match found.iter_mut().find(|(n, _, _)| *n == name) {
                Some(e) => e.1 += 1,
                None => found.push((name, 1, i)),
            }
        }
        sentence_start = false;
        i = j;
    }
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    found.into_iter().map(|(n, c, _)| (n, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORY: &str = "The European Central Bank raised interest rates on Thursday. \
        Christine Lagarde said interest rates would stay high while inflation stays above target. \
        Markets in New York fell after the European Central Bank decision.";

    #[test]
    fn finds_names_with_counts() {
        let e = entities(STORY);
        assert_eq!(e[0], ("European Central Bank".to_owned(), 2));
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"Christine Lagarde"), "{names:?}");
        assert!(names.contains(&"New York"), "{names:?}");
        assert!(!names.contains(&"The"), "{names:?}");
    }

    #[test]
    fn ranks_recurring_phrases_first() {
        let k = keywords(STORY, 5, 3, &[]);
        let terms: Vec<&str> = k.iter().map(|(t, _)| t.as_str()).collect();
        assert!(terms[..2].contains(&"european central bank"), "{terms:?}");
        assert!(terms.contains(&"interest rates"), "{terms:?}");
        assert!(terms
            .iter()
            .all(|t| !t.split(' ').any(|w| STOPWORDS.contains(&w))));
    }

    #[test]
    fn runs_on_the_whole_with_map() {
        let d = Keywords::describe();
        let outs: Vec<&str> = d.outputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(outs, ["keywords", "entities", "tags"]);
        let out = testing::run::<Keywords>(json!({"text": STORY, "max_keywords": 2})).unwrap();
        assert_eq!(
            out["entities"][0],
            json!({"text": "European Central Bank", "count": 2})
        );
        assert_eq!(out["tags"].as_array().map(Vec::len), Some(2));
        let issues =
            testing::validate::<Keywords>(&json!({"text": "x", "stopwords": ["city hall"]}));
        assert_eq!(issues[0].message, "`city hall` is not a single word");
    }

    #[test]
    fn joins_names_across_of() {
        let e = entities("He met the Bank of England governor.");
        assert_eq!(e[0].0, "Bank of England");
    }
}
