//! Subtitle cues from word timings, to the conventions of the BBC subtitle guidelines and
//! Netflix's timed-text style guide: at most `max_lines` lines of at most `max_line_chars`
//! characters, on screen between 5/6 s and 7 s, read at no more than `max_cps` characters a
//! second, broken at sentence ends first, then clause ends, then before a conjunction or
//! preposition, never leaving a word or two alone, lines balanced.
//!
//! The words are split into cues by dynamic programming over the break points: every cue
//! that fits the line limits is a candidate, and a split's cost adds up, per cue, how bad its
//! break is, how far it is from the limits on time and reading speed, and how short it is.
//! A cue's display time runs from its first word to its last, stretched (into the silence
//! after it, never over the next cue) to the minimum duration and to the time its text needs
//! at the reading speed, and cut at the maximum.

use mediaflow_plugin_api::{schemars, JsonSchema};
use serde::Serialize;

/// A word and when it was spoken, in seconds from the start of the audio.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Word {
    /// The word as transcribed, with the punctuation that follows it.
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// How sure the model was of the word (the mean of its tokens' probabilities).
    pub probability: f64,
}

/// The limits cues are built to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub max_line_chars: usize,
    pub max_lines: usize,
    /// Characters per second, spaces and line breaks not counted.
    pub max_cps: f64,
    pub min_duration: f64,
    pub max_duration: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_chars: 42,
            max_lines: 2,
            max_cps: 17.0,
            min_duration: 5.0 / 6.0,
            max_duration: 7.0,
        }
    }
}

/// One subtitle: its lines and when it is shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub lines: Vec<String>,
}

impl Cue {
    /// The cue's text on one line.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// Characters a reader reads: spaces not counted.
fn reading_chars(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

fn len(text: &str) -> usize {
    text.chars().count()
}

/// Words a line or cue should not end on: a break before them reads well.
const BREAK_BEFORE: [&str; 24] = [
    "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while", "which",
    "who", "whose", "where", "when", "that", "if", "unless", "until", "after", "before", "since",
    "as", "than",
];

/// Words a line or cue should not end on: a break after them splits what belongs together.
const NO_BREAK_AFTER: [&str; 16] = [
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "by", "from", "my", "our",
    "their", "his",
];

fn bare(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase()
}

/// How bad a break after `word` (and before `next`) is: 0 at a sentence end, more the less
/// of a boundary it is.
fn break_cost(word: &str, next: Option<&str>) -> f64 {
    let Some(next) = next else { return 0.0 };
    let last = word.trim_end_matches(['"', '\'', ')', ']', '”', '’']);
    if last.ends_with(['.', '?', '!', '…']) {
        return 0.0;
    }
    if last.ends_with([',', ';', ':', '—', '–']) {
        return 1.0;
    }
    if NO_BREAK_AFTER.contains(&bare(word).as_str()) {
        return 8.0;
    }
    if BREAK_BEFORE.contains(&bare(next).as_str()) {
        return 2.5;
    }
    5.0
}

/// The best way to put `words` on at most `max_lines` lines of `max_chars`, as
/// (lines, cost); `None` if they do not fit.
fn lines(words: &[&str], l: &Limits) -> Option<(Vec<String>, f64)> {
    let one = words.join(" ");
    if len(&one) <= l.max_line_chars {
        return Some((vec![one], 0.0));
    }
    if l.max_lines < 2 {
        return None;
    }
    // Two lines (or more, greedily, past the second): pick the break that reads best and
    // keeps the lines even, a slightly longer bottom line preferred.
    let mut best: Option<(Vec<String>, f64)> = None;
    for k in 1..words.len() {
        let (top, bottom) = (words[..k].join(" "), words[k..].join(" "));
        if len(&top) > l.max_line_chars {
            break;
        }
        let rest = if len(&bottom) <= l.max_line_chars {
            vec![bottom]
        } else if l.max_lines > 2 {
            match lines(
                &words[k..],
                &Limits {
                    max_lines: l.max_lines - 1,
                    ..*l
                },
            ) {
                Some((rest, _)) => rest,
                None => continue,
            }
        } else {
            continue;
        };
        let bottom_len = len(&rest[0]);
        let uneven = (len(&top) as f64 - bottom_len as f64).abs() / l.max_line_chars as f64;
        let top_heavy = if len(&top) > bottom_len { 0.3 } else { 0.0 };
        let cost = break_cost(words[k - 1], Some(words[k])) * 0.6 + uneven * 4.0 + top_heavy;
        if best.as_ref().is_none_or(|(_, c)| cost < *c) {
            let mut all = vec![top];
            all.extend(rest);
            best = Some((all, cost));
        }
    }
    best
}

/// Cues for `words` (in order, times monotonic), holding exactly their text.
pub fn build(words: &[Word], l: &Limits) -> Vec<Cue> {
    let n = words.len();
    if n == 0 {
        return Vec::new();
    }
    let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
    // best[j] = (cost, start of the last cue) of the best split of words[..j].
    let mut best: Vec<(f64, usize)> = vec![(f64::INFINITY, 0); n + 1];
    best[0] = (0.0, 0);
    for j in 1..=n {
        // Cues ending after word j - 1, starting at i, longest first until they stop fitting.
        for i in (0..j).rev() {
            if best[i].0.is_infinite() {
                continue;
            }
            let Some((_, line_cost)) = lines(&texts[i..j], l) else {
                break;
            };
            let cost = best[i].0 + cue_cost(words, i, j, line_cost, l);
            if cost < best[j].0 {
                best[j] = (cost, i);
            }
        }
        if best[j].0.is_infinite() {
            // A single word longer than a line: it gets a cue of its own.
            best[j] = (best[j - 1].0 + 100.0, j - 1);
        }
    }
    let mut bounds = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = best[j].1;
        bounds.push((i, j));
        j = i;
    }
    bounds.reverse();
    let mut cues: Vec<Cue> = Vec::with_capacity(bounds.len());
    for (k, (i, j)) in bounds.iter().copied().enumerate() {
        let lines = lines(&texts[i..j], l).map_or_else(|| vec![texts[i..j].join(" ")], |x| x.0);
        let start = words[i].start.max(cues.last().map_or(0.0, |c: &Cue| c.end));
        let next = bounds.get(k + 1).map(|(a, _)| words[*a].start);
        let (_, end) = timing(start, words[j - 1].end, &lines.join(" "), next, l);
        cues.push(Cue { start, end, lines });
    }
    cues
}

/// (start, end) of a cue whose speech runs `start..spoken_end`: stretched to the minimum
/// duration and the reading time of `text`, no further than `next` (the next cue's start)
/// and the maximum duration, never shorter than the speech.
fn timing(start: f64, spoken_end: f64, text: &str, next: Option<f64>, l: &Limits) -> (f64, f64) {
    let want = (start + l.min_duration)
        .max(start + reading_chars(text) as f64 / l.max_cps)
        .min(start + l.max_duration);
    let mut end = spoken_end.max(want);
    if let Some(next) = next {
        end = end.min(next.max(spoken_end));
    }
    (start, end.max(spoken_end).max(start + 0.001))
}

/// The cost of the cue `words[i..j]`: its break, its line layout, how far outside the
/// duration and reading-speed limits it would be shown, orphans, and a small cost per cue
/// so that cues are as full as reads well.
fn cue_cost(words: &[Word], i: usize, j: usize, line_cost: f64, l: &Limits) -> f64 {
    let texts: Vec<&str> = words[i..j].iter().map(|w| w.word.as_str()).collect();
    let text = texts.join(" ");
    let next = words.get(j);
    let (start, end) = timing(
        words[i].start,
        words[j - 1].end,
        &text,
        next.map(|w| w.start),
        l,
    );
    let duration = end - start;
    let mut cost = 3.0 * break_cost(words[j - 1].word.as_str(), next.map(|w| w.word.as_str()));
    cost += line_cost;
    if duration > l.max_duration + 1e-9 {
        cost += 50.0 + 20.0 * (duration - l.max_duration);
    }
    if duration + 1e-9 < l.min_duration {
        cost += 40.0 + 40.0 * (l.min_duration - duration);
    }
    let cps = reading_chars(&text) as f64 / duration.max(1e-3);
    if cps > l.max_cps + 1e-9 {
        cost += 40.0 + 10.0 * (cps - l.max_cps);
    }
    // Orphans: a cue of one or two words, unless that is all there is between two sentence
    // ends.
    let sentence_start = i == 0 || break_cost(&words[i - 1].word, Some(&words[i].word)) == 0.0;
    let sentence_end = break_cost(words[j - 1].word.as_str(), next.map(|w| w.word.as_str())) == 0.0;
    if j - i <= 2 && !(sentence_start && sentence_end) {
        cost += 30.0;
    }
    cost + 2.0
}

/// Words for segments that came without token times: each segment's words share its time
/// in proportion to their length.
pub fn words_of_segments(segments: &[crate::subtitles::Segment]) -> Vec<Word> {
    let mut out = Vec::new();
    for s in segments {
        let words: Vec<&str> = s.text.split_whitespace().collect();
        let total: usize = words.iter().map(|w| len(w) + 1).sum();
        let mut t = s.start;
        for w in words {
            let d = (s.end - s.start).max(0.0) * (len(w) + 1) as f64 / total.max(1) as f64;
            out.push(Word {
                word: w.to_owned(),
                start: t,
                end: t + d,
                probability: 0.0,
            });
            t += d;
        }
    }
    out
}

/// Every way `cues` break `limits`, as lines a test or a log can show; empty when none.
pub fn violations(cues: &[Cue], l: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    for (k, c) in cues.iter().enumerate() {
        let d = c.end - c.start;
        let cps = reading_chars(&c.text()) as f64 / d.max(1e-3);
        let mut bad = Vec::new();
        if c.lines.len() > l.max_lines {
            bad.push(format!("{} lines", c.lines.len()));
        }
        if let Some(long) = c.lines.iter().find(|x| len(x) > l.max_line_chars) {
            bad.push(format!("a line of {} characters ({long:?})", len(long)));
        }
        if d + 1e-6 < l.min_duration {
            bad.push(format!("{d:.2} s on screen"));
        }
        if d > l.max_duration + 1e-6 {
            bad.push(format!("{d:.2} s on screen"));
        }
        if cps > l.max_cps + 1e-6 {
            bad.push(format!("{cps:.1} characters a second"));
        }
        let ends = |t: &str| break_cost(t, Some("")) == 0.0;
        let whole_sentence =
            (k == 0 || ends(&cues[k - 1].text())) && (k + 1 == cues.len() || ends(&c.text()));
        if c.text().split_whitespace().count() <= 2 && !whole_sentence {
            bad.push("an orphan".into());
        }
        if k > 0 && c.start + 1e-9 < cues[k - 1].end {
            bad.push("overlaps the cue before".into());
        }
        if !bad.is_empty() {
            out.push(format!(
                "cue {} ({:.2}–{:.2} s, {:?}): {}",
                k + 1,
                c.start,
                c.end,
                c.text(),
                bad.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
