//! `text.profanity`: finds, masks or removes profanity before copy goes out.
//!
//! Matching is per word, case-insensitive, and sees through common disguises
//! (`sh1t`, `f@ck`, `$hit`, repeated letters). Stems match their inflections (`fucking`,
//! `shitty`) but not unrelated words that merely contain them (`Scunthorpe`, `cockpit`,
//! `Dickens`, `assistant`), because short stems only match whole words.

use mediaflow_sdk::*;

pub struct Profanity;

/// `(stem, matches longer words starting with it)`.
const WORDS: &[(&str, bool)] = &[
    ("fuck", true),
    ("motherfuck", true),
    ("shit", true),
    ("bullshit", true),
    ("bitch", true),
    ("bastard", true),
    ("asshole", true),
    ("arsehole", true),
    ("cunt", false),
    ("cunts", false),
    ("dick", false),
    ("dicks", false),
    ("dickhead", true),
    ("prick", false),
    ("pricks", false),
    ("piss", false),
    ("pissed", false),
    ("crap", false),
    ("crappy", false),
    ("bollocks", false),
    ("wanker", true),
    ("twat", false),
    ("slut", true),
    ("whore", true),
    ("cock", false),
    ("cocks", false),
    ("damn", true),
    ("goddamn", true),
];

/// Settings of `text.profanity`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The copy to check.
    pub text: String,
    /// mask: keep the first letter, star the rest; remove: drop the word; flag: only report
    #[serde(default)]
    pub mode: Mode,
    /// more words to catch (whole words)
    #[serde(default)]
    pub extra_words: Vec<String>,
    /// words never to touch (e.g. `damn` for a culture desk)
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Mask,
    Remove,
    Flag,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The text, masked or with the words removed (unchanged with `mode: flag`).
    pub text: String,
    /// Whether anything matched.
    pub flagged: bool,
    /// How many words matched.
    pub count: usize,
    /// The words that matched, as written.
    pub matches: Vec<String>,
}

impl Plugin for Profanity {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>(
            "text.profanity",
            "1.0.0",
            "Finds profanity and masks it, removes it, or only flags it",
        )
        .inputs(["text"])
        .outputs_from::<Output>()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let list =
            |words: &[String]| -> Vec<String> { words.iter().map(|w| normalize(w)).collect() };
        let (extra, allow) = (list(&config.extra_words), list(&config.allow));
        let (text, matches) = filter(&config.text, config.mode, &extra, &allow);
        Ok(Output {
            text,
            flagged: !matches.is_empty(),
            count: matches.len(),
            matches,
        })
    }
}

export!(Profanity);

/// Lowercase, leetspeak undone, letters repeated more than twice squeezed to one. `@`
/// stays: it stands for any vowel (`f@ck`, `sh@t`), see [`same`].
pub fn normalize(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut last = None;
    let mut run = 0;
    for c in word.chars() {
        let c = match c {
            '0' => 'o',
            '1' | '!' | '|' => 'i',
            '3' => 'e',
            '4' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            c => c,
        };
        for c in c.to_lowercase() {
            if Some(c) == last {
                run += 1;
            } else {
                run = 1;
                last = Some(c);
            }
            if run <= 2 {
                out.push(c);
            }
        }
    }
    // "shiiit" → "shiit" above; a doubled letter the stem lacks is squeezed too.
    out
}

fn squeeze(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars() {
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

fn is_profane(norm: &str, extra: &[String], allow: &[String]) -> bool {
    if allow.iter().any(|a| a == norm) {
        return false;
    }
    if extra.iter().any(|e| e == norm) {
        return true;
    }
    let squeezed = squeeze(norm);
    WORDS.iter().any(|(stem, prefix)| {
        let hit = |w: &str| same(w, stem, *prefix);
        hit(norm) || hit(&squeezed) || (*prefix && same(&squeezed, &squeeze(stem), false))
    })
}

/// `word` spells `stem` (or starts with it, if `prefix`), where `@` in `word` may stand
/// for any vowel.
fn same(word: &str, stem: &str, prefix: bool) -> bool {
    let mut w = word.chars();
    for s in stem.chars() {
        match w.next() {
            Some(c) if c == s || (c == '@' && "aeiou".contains(s)) => {}
            _ => return false,
        }
    }
    prefix || w.next().is_none()
}

/// The filtered text and the words that matched, as written.
pub fn filter(text: &str, mode: Mode, extra: &[String], allow: &[String]) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut matches = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        rest = &rest[end..];
        // Leading/trailing punctuation is not part of the word ("shit!" → "shit").
        let start = token
            .find(|c: char| c.is_alphanumeric() || "@$".contains(c))
            .unwrap_or(token.len());
        let stop = token
            .rfind(|c: char| c.is_alphanumeric() || "@$".contains(c))
            .map(|i| i + token[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(start);
        let word = &token[start..stop.max(start)];
        if !word.is_empty() && is_profane(&normalize(word), extra, allow) {
            matches.push(word.to_owned());
            match mode {
                Mode::Flag => out.push_str(token),
                Mode::Remove => {
                    // Drop the word and one following space.
                    if rest.starts_with(' ') {
                        rest = &rest[1..];
                    }
                    if out.ends_with(' ') && rest.is_empty() {
                        out.pop();
                    }
                }
                Mode::Mask => {
                    out.push_str(&token[..start]);
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        out.push(first);
                    }
                    out.extend(chars.map(|_| '*'));
                    out.push_str(&token[stop.max(start)..]);
                }
            }
        } else {
            out.push_str(token);
        }
    }
    (out, matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_disguised_words_and_keeps_punctuation() {
        let (out, m) = filter("What the f@ck, this is SHIIIT!", Mode::Mask, &[], &[]);
        assert_eq!(out, "What the f***, this is S*****!");
        assert_eq!(m, vec!["f@ck", "SHIIIT"]);
        let (_, m) = filter("sh1t $hit fuuuck sh@t b1tch", Mode::Flag, &[], &[]);
        assert_eq!(m.len(), 5, "{m:?}");
        // `@` is a vowel, not a wildcard for anything.
        assert!(filter("f@@k d@mp", Mode::Flag, &[], &[]).1.is_empty());
    }

    #[test]
    fn runs_on_the_whole_with_map() {
        assert_eq!(Profanity::describe().outputs.len(), 4);
        let out = testing::run::<Profanity>(json!({"text": "oh damn it", "mode": "flag"}));
        assert_eq!(
            out.unwrap(),
            json!({"text": "oh damn it", "flagged": true, "count": 1, "matches": ["damn"]})
        );
        let out = testing::run::<Profanity>(json!({"text": "oh damn it", "allow": ["DAMN"]}));
        assert_eq!(out.unwrap()["count"], 0);
    }

    #[test]
    fn leaves_innocent_words_alone() {
        let text = "Scunthorpe's assistant read Dickens in the cockpit, then passed the class";
        let (out, m) = filter(text, Mode::Mask, &[], &[]);
        assert_eq!(out, text);
        assert!(m.is_empty());
    }

    #[test]
    fn modes_allow_and_extra_words() {
        assert_eq!(filter("oh damn it", Mode::Remove, &[], &[]).0, "oh it");
        assert_eq!(filter("oh damn it", Mode::Flag, &[], &[]).0, "oh damn it");
        assert_eq!(
            filter("oh damn it", Mode::Mask, &[], &["damn".into()])
                .1
                .len(),
            0
        );
        assert_eq!(
            filter("total tosser", Mode::Mask, &["tosser".into()], &[]).0,
            "total t*****"
        );
        assert_eq!(
            filter("bullshitting again", Mode::Mask, &[], &[]).1,
            vec!["bullshitting"]
        );
    }
}
