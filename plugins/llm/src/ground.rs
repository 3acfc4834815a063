//! Grounding: the names, numbers and quotations a generation writes must occur in its
//! source text.
//!
//! What counts as an entity:
//! - a **name**: a run of capitalised words ("Hill Top", "New South Wales Rural Fire
//!   Service"), which may hold the connectors `of`, `de`, `van`, `von`, `bin`, `al`, `la`,
//!   `le`, `du`, `der`, `den`, `da` between capitalised words ("Bank of England"). A run that
//!   starts a sentence loses its first word when that word is a common sentence opener or
//!   occurs anywhere in the source in any case ("Fire crews …", "The …"). Possessives are
//!   dropped ("Rudd's" is "Rudd"), case is ignored, and any run of words inside a source
//!   name is grounded ("Kevin Rudd" inside "Prime Minister Kevin Rudd"). Months and
//!   weekdays are names, so dates are checked through their parts.
//! - a **number**: digits with `,` or `.` between digits ("4,000", "3.5"); thousands
//!   separators are ignored ("4,000" is "4000") and a trailing ordinal or unit is not part
//!   of it ("31st" is "31"). Numbers written as words are not checked.
//! - a **quotation**: two or more words between double quotes (`"…"`, `“…”`), grounded when
//!   the source holds the same words in that order (case and punctuation ignored).
//!
//! While decoding, [`Source::allows`] masks a token that would start or continue a name or
//! number that no source entity begins with; [`Source::ungrounded`] reports what still got
//! through (quotations are reported, not masked).

use std::collections::{BTreeSet, HashSet};

const CONNECTORS: &[&str] = &[
    "of", "de", "van", "von", "bin", "al", "la", "le", "du", "der", "den", "da",
];

/// Words that open sentences without naming anything.
const OPENERS: &[&str] = &[
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "it",
    "its",
    "i",
    "he",
    "she",
    "we",
    "they",
    "you",
    "his",
    "her",
    "their",
    "our",
    "in",
    "on",
    "at",
    "after",
    "before",
    "as",
    "but",
    "and",
    "or",
    "if",
    "when",
    "while",
    "with",
    "without",
    "for",
    "from",
    "by",
    "to",
    "of",
    "some",
    "many",
    "more",
    "most",
    "all",
    "no",
    "not",
    "there",
    "here",
    "what",
    "who",
    "how",
    "why",
    "where",
    "new",
    "over",
    "about",
    "up",
    "meanwhile",
    "however",
    "also",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Name,
    Number,
    Quote,
}

/// An entity found in a text, with its byte range there.
#[derive(Debug, Clone)]
pub struct Entity {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// The normalised form it is looked up by.
    pub key: String,
}

/// What a generation may name: the source's entities, normalised.
#[derive(Debug, Default)]
pub struct Source {
    names: BTreeSet<String>,
    numbers: BTreeSet<String>,
    words: HashSet<String>,
    /// The source's words, lowercased, one space between, for quotations.
    flat: String,
}

fn has_prefix(set: &BTreeSet<String>, prefix: &str) -> bool {
    set.range(prefix.to_owned()..)
        .next()
        .is_some_and(|s| s.starts_with(prefix))
}

/// A word: letters, digits and the apostrophes, hyphens and number separators inside one.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    /// Only spaces between this word and the one before (no punctuation).
    joined: bool,
    /// The first word of a sentence (or of the text, or of a quotation).
    opens: bool,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut joined = false;
    let mut opens = true;
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                let inner = matches!(d, '\'' | '’' | '-' | '.' | ',')
                    && text[j + d.len_utf8()..].chars().next().is_some_and(|n| {
                        if matches!(d, '.' | ',') {
                            c.is_ascii_digit() && n.is_ascii_digit()
                        } else {
                            n.is_alphanumeric()
                        }
                    });
                if d.is_alphanumeric() || inner {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Word {
                start: i,
                end,
                joined,
                opens,
            });
            joined = true;
            opens = false;
        } else if c.is_whitespace() {
            if c == '\n' {
                opens = true;
                joined = false;
            }
        } else {
            joined = false;
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '"' | '“' | '”') {
                opens = true;
            }
        }
    }
    out
}

fn capitalised(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_uppercase)
}

fn numeric(w: &str) -> bool {
    w.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// A word's lookup form: lowercase, possessive dropped.
fn norm_word(w: &str) -> String {
    let w = w.to_lowercase().replace('’', "'");
    w.strip_suffix("'s")
        .or_else(|| w.strip_suffix('\''))
        .unwrap_or(&w)
        .to_owned()
}

/// A number's lookup form: its leading digits and inner separators, commas dropped.
fn norm_number(w: &str) -> String {
    let digits: String = w
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
        .filter(|c| *c != ',')
        .collect();
    digits.trim_end_matches('.').to_owned()
}

/// Runs of capitalised words (with connectors between them) as word-index ranges.
fn name_runs(text: &str, ws: &[Word]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        let w = &text[ws[i].start..ws[i].end];
        if !capitalised(w) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < ws.len() && ws[j].joined && !ws[j].opens {
            let t = &text[ws[j].start..ws[j].end];
            if capitalised(t) {
                j += 1;
            } else if CONNECTORS.contains(&t)
                && j + 1 < ws.len()
                && ws[j + 1].joined
                && capitalised(&text[ws[j + 1].start..ws[j + 1].end])
            {
                j += 2;
            } else {
                break;
            }
        }
        runs.push((i, j));
        i = j;
    }
    runs
}

fn key_of(text: &str, ws: &[Word]) -> String {
    ws.iter()
        .map(|w| norm_word(&text[w.start..w.end]))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Source {
    pub fn new(text: &str) -> Self {
        let ws = words(text);
        let mut s = Source::default();
        for w in &ws {
            let t = &text[w.start..w.end];
            s.words.insert(norm_word(t));
            if numeric(t) {
                s.numbers.insert(norm_number(t));
            }
        }
        for (a, b) in name_runs(text, &ws) {
            // Every run of words inside a name is a name too.
            for i in a..b {
                for j in i + 1..=b {
                    s.names.insert(key_of(text, &ws[i..j]));
                }
            }
        }
        s.flat = key_of(text, &ws);
        s
    }

    /// A sentence's first word that need not name anything.
    fn plain_opener(&self, key: &str) -> bool {
        OPENERS.contains(&key) || self.words.contains(key)
    }

    /// The entities in `text`, in order.
    pub fn entities(&self, text: &str) -> Vec<Entity> {
        let ws = words(text);
        let mut out = Vec::new();
        for w in &ws {
            let t = &text[w.start..w.end];
            if numeric(t) {
                out.push(Entity {
                    kind: Kind::Number,
                    start: w.start,
                    end: w.end,
                    key: norm_number(t),
                });
            }
        }
        for (mut a, b) in name_runs(text, &ws) {
            if ws[a].opens && self.plain_opener(&norm_word(&text[ws[a].start..ws[a].end])) {
                a += 1;
                // A connector left at the front is not part of a name either.
                while a < b && !capitalised(&text[ws[a].start..ws[a].end]) {
                    a += 1;
                }
            }
            if a < b {
                out.push(Entity {
                    kind: Kind::Name,
                    start: ws[a].start,
                    end: ws[b - 1].end,
                    key: key_of(text, &ws[a..b]),
                });
            }
        }
        for (start, end) in quotations(text) {
            let inner = words(&text[start..end]);
            if inner.len() >= 2 {
                out.push(Entity {
                    kind: Kind::Quote,
                    start,
                    end,
                    key: key_of(&text[start..end], &inner),
                });
            }
        }
        out.sort_by_key(|e| e.start);
        out
    }

    pub fn grounded(&self, e: &Entity) -> bool {
        match e.kind {
            Kind::Name => self.names.contains(&e.key),
            Kind::Number => e.key.is_empty() || self.numbers.contains(&e.key),
            Kind::Quote => {
                let padded = format!(" {} ", self.flat);
                padded.contains(&format!(" {} ", e.key))
            }
        }
    }

    /// The entities in `text` the source does not hold, as written.
    pub fn ungrounded(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.entities(text) {
            let written = text[e.start..e.end].to_owned();
            if !self.grounded(&e) && !out.contains(&written) {
                out.push(written);
            }
        }
        out
    }

    /// Whether `text` (the checked text so far, with a candidate token's piece at its end
    /// from byte `from`) keeps every name and number grounded. An entity is decided by the
    /// first character after it; those decided inside the piece must be source entities,
    /// and one still open at the end must begin one.
    pub fn allows(&self, text: &str, from: usize) -> bool {
        let ws = words(text);
        // `None`: still open; `Some(at)`: decided by the character at `at`. A name stays
        // open across spaces (a capitalised word may follow); a number ends at any
        // character. A separator that could go on ("4," of "4,000", "Rudd'" of "Rudd's")
        // leaves it open while it is the last character, and the character after it
        // decides.
        let decided = |end: usize, spaces: bool, going_on: &[char]| {
            let rest = &text[end..];
            if let Some(g) = rest.chars().next().filter(|c| going_on.contains(c)) {
                let after = end + g.len_utf8();
                return (after < text.len()).then_some(after);
            }
            let t = if spaces { rest.trim_start() } else { rest };
            (!t.is_empty()).then(|| text.len() - t.len())
        };
        for w in &ws {
            let t = &text[w.start..w.end];
            if !numeric(t) {
                continue;
            }
            let key = norm_number(t);
            let ok = match decided(w.end, false, &[',', '.']) {
                None => has_prefix(&self.numbers, &key),
                Some(at) if at < from => true,
                Some(_) => self.numbers.contains(&key),
            };
            if !ok {
                return false;
            }
        }
        for (a, b) in name_runs(text, &ws) {
            let state = decided(ws[b - 1].end, true, &['\'', '’', '-']);
            if state.is_some_and(|at| at < from) {
                continue;
            }
            let open = state.is_none();
            let mut first = a;
            let opener = norm_word(&text[ws[a].start..ws[a].end]);
            if ws[a].opens {
                let typing_opener = open && b - a == 1 && ws[a].end == text.len();
                if typing_opener
                    && (OPENERS.iter().any(|o| o.starts_with(&opener))
                        || self.words.iter().any(|w| w.starts_with(&opener))
                        || has_prefix(&self.names, &opener))
                {
                    continue;
                }
                if self.plain_opener(&opener) {
                    first += 1;
                    while first < b && !capitalised(&text[ws[first].start..ws[first].end]) {
                        first += 1;
                    }
                }
            }
            if first >= b {
                continue;
            }
            let key = key_of(text, &ws[first..b]);
            let ok = if open {
                has_prefix(&self.names, &key)
            } else {
                self.names.contains(&key)
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

/// `ungrounded` for a finished output: every string in `json`'s checked top-level fields
/// (`fields`; empty: all of them), or, without JSON, the whole text.
pub fn report(
    source: &Source,
    text: &str,
    json: Option<&serde_json::Value>,
    fields: &[String],
) -> Vec<String> {
    use serde_json::Value;
    fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(m) => m.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let Some(json) = json else {
        return source.ungrounded(text);
    };
    let mut checked = Vec::new();
    match json {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| fields.is_empty() || fields.contains(k))
            .for_each(|(_, v)| strings(v, &mut checked)),
        other if fields.is_empty() => strings(other, &mut checked),
        _ => {}
    }
    let mut out: Vec<String> = Vec::new();
    for s in checked {
        for u in source.ungrounded(s) {
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

/// Byte ranges of the text inside double quotes.
fn quotations(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c, open) {
            ('“', _) => open = Some(i + c.len_utf8()),
            ('”', Some(s)) | ('"', Some(s)) => {
                out.push((s, i));
                open = None;
            }
            ('"', None) => open = Some(i + 1),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORY: &str =
        "Hundreds of people have been forced to vacate their homes in the Southern \
        Highlands of New South Wales as winds pushed a bushfire towards Hill Top. An estimated \
        4,000 residents have left for Mittagong. Prime Minister Kevin Rudd's office said \
        crews would stay until December 31. The Bureau of Meteorology's Claire Richards says \
        \"the rain has done little to ease the fires\".";

    fn keys(s: &Source, text: &str) -> Vec<String> {
        s.entities(text).into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn entities_are_names_numbers_and_quotations() {
        let s = Source::new(STORY);
        assert_eq!(
            keys(
                &s,
                "Residents said Kevin Rudd's team met 4000 people in Hill Top on December 31."
            ),
            ["kevin rudd", "4000", "hill top", "december", "31"]
        );
        assert_eq!(
            keys(&s, "The Bank of England said \"rates will rise\"."),
            ["bank of england", "rates will rise"]
        );
    }

    #[test]
    fn sources_ground_their_names_parts_and_number_formats() {
        let s = Source::new(STORY);
        let none: Vec<String> = Vec::new();
        assert_eq!(
            s.ungrounded(
                "Kevin Rudd and Claire Richards: 4000 left New South Wales for Mittagong."
            ),
            none
        );
        assert_eq!(
            s.ungrounded("Vladimir Putin said 5,000 fled Hill Top, \"the rain has done little\"."),
            ["Vladimir Putin", "5,000"]
        );
        assert_eq!(
            s.ungrounded("He said \"the rain will come\"."),
            ["the rain will come"]
        );
    }

    #[test]
    fn decoding_masks_what_no_source_entity_begins_with() {
        let s = Source::new(STORY);
        // Writing a grounded name or number, piece by piece.
        assert!(s.allows("Winds pushed the fire to Hill", 24));
        assert!(s.allows("Winds pushed the fire to Hill Top", 29));
        assert!(s.allows("About 4,0", 6));
        // Starting a name or number the story does not have.
        assert!(!s.allows("Officials met Vlad", 13));
        assert!(!s.allows("About 5", 5));
        // A grounded prefix that ends as something else.
        assert!(!s.allows("About 40 ", 6));
        assert!(!s.allows("They met Kevin Smith", 15));
        // Sentence openers are plain words.
        assert!(s.allows("Crews", 0));
        assert!(s.allows("Residents left. The", 15));
        // A possessive's closing quote keeps a name open only until the next character.
        let honours = Source::new("Jackson is in the New Years Honours list.");
        let typed = "Jackson won New Year's'";
        assert!(honours.allows(typed, typed.len() - 1));
        assert!(!honours.allows("Jackson won New Year's' prize", typed.len()));
        // With nothing to ground in, no name or number can start.
        let empty = Source::new("");
        assert!(!empty.allows("Officials met K", 13));
        assert!(!empty.allows("About 1", 5));
        assert!(empty.allows("The", 0));
    }
}
