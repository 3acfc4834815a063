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

impl Plugin for Profanity {
    fn describe() -> Descriptor {
        Descriptor::new(
            "text.profanity",
            "1.0.0",
            "Finds profanity and masks it, removes it, or only flags it",
        )
        .input("text", Type::String)
        .option(
            "mode",
            json!({"enum": ["mask", "remove", "flag"], "default": "mask"}),
        )
        .option(
            "extra_words",
            json!({"type": "array", "items": {"type": "string"},
                   "description": "more words to catch (whole words)"}),
        )
        .option(
            "allow",
            json!({"type": "array", "items": {"type": "string"},
                   "description": "words never to touch (e.g. `damn` for a culture desk)"}),
        )
        .output("text", Type::String)
        .output("flagged", Type::Boolean)
        .output("count", Type::Integer)
        .output("matches", Type::List)
    }

    fn run(config: Value, inputs: Value) -> Result<Value, Error> {
        let text = get_str(&inputs, "text")?;
        let list = |k: &str| -> Vec<String> {
            config
                .get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(normalize).collect())
                .unwrap_or_default()
        };
        let (extra, allow) = (list("extra_words"), list("allow"));
        let mode = get_str_or(&config, "mode", "mask");
        let (out, matches) = filter(text, mode, &extra, &allow);
        Ok(json!({
            "text": out,
            "flagged": !matches.is_empty(),
            "count": matches.len(),
            "matches": matches,
        }))
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
pub fn filter(text: &str, mode: &str, extra: &[String], allow: &[String]) -> (String, Vec<String>) {
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
                "flag" => out.push_str(token),
                "remove" => {
                    // Drop the word and one following space.
                    if rest.starts_with(' ') {
                        rest = &rest[1..];
                    }
                    if out.ends_with(' ') && rest.is_empty() {
                        out.pop();
                    }
                }
                _ => {
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
        let (out, m) = filter("What the f@ck, this is SHIIIT!", "mask", &[], &[]);
        assert_eq!(out, "What the f***, this is S*****!");
        assert_eq!(m, vec!["f@ck", "SHIIIT"]);
        let (_, m) = filter("sh1t $hit fuuuck sh@t b1tch", "flag", &[], &[]);
        assert_eq!(m.len(), 5, "{m:?}");
        // `@` is a vowel, not a wildcard for anything.
        assert!(filter("f@@k d@mp", "flag", &[], &[]).1.is_empty());
    }

    #[test]
    fn leaves_innocent_words_alone() {
        let text = "Scunthorpe's assistant read Dickens in the cockpit, then passed the class";
        let (out, m) = filter(text, "mask", &[], &[]);
        assert_eq!(out, text);
        assert!(m.is_empty());
    }

    #[test]
    fn modes_allow_and_extra_words() {
        assert_eq!(filter("oh damn it", "remove", &[], &[]).0, "oh it");
        assert_eq!(filter("oh damn it", "flag", &[], &[]).0, "oh damn it");
        assert_eq!(
            filter("oh damn it", "mask", &[], &["damn".into()]).1.len(),
            0
        );
        assert_eq!(
            filter("total tosser", "mask", &["tosser".into()], &[]).0,
            "total t*****"
        );
        assert_eq!(
            filter("bullshitting again", "mask", &[], &[]).1,
            vec!["bullshitting"]
        );
    }
}
