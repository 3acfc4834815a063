//! `text.ap_headline`: headline casing in AP style.
//!
//! - `style: title` (default) follows the AP rule for composition titles: capitalize the
//!   principal words, including prepositions and conjunctions of four or more letters;
//!   lowercase articles and short conjunctions/prepositions unless first or last (or first
//!   after a colon or dash).
//! - `style: sentence` is AP's rule for news headlines: capitalize the first word (and the
//!   first after a colon) and proper nouns only.
//!
//! Acronyms (`NASA`, `U.S.`) and mixed-case names (`iPhone`, `McDonald's`) are kept as
//! written, and so are the words listed in `preserve`.

use mediaflow_sdk::*;

pub struct ApHeadline;

/// Settings of `text.ap_headline`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The headline to case.
    pub text: String,
    /// title: AP composition-title case; sentence: AP headline (sentence) case
    #[serde(default)]
    pub style: Style,
    /// words always written exactly like this (names, brands)
    #[serde(default)]
    pub preserve: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    #[default]
    Title,
    Sentence,
}

#[derive(Serialize, JsonSchema)]
pub struct Output {
    /// The headline, cased.
    pub text: String,
    /// Whether the casing changed anything.
    pub changed: bool,
}

/// Lowercased in titles unless first or last: articles, and conjunctions and prepositions
/// of three letters or fewer.
const SMALL: &[&str] = &[
    "a", "an", "the", "and", "but", "for", "nor", "or", "so", "yet", "as", "at", "by", "in", "of",
    "off", "on", "out", "per", "to", "up", "via", "vs", "vs.", "v.",
];

impl Plugin for ApHeadline {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>(
            "text.ap_headline",
            "1.0.0",
            "Cases a headline in AP style (title or sentence case)",
        )
        .inputs(["text"])
        .outputs_from::<Output>()
    }

    fn check(config: &Config) -> Vec<Issue> {
        config
            .preserve
            .iter()
            .enumerate()
            .filter(|(_, w)| w.split_whitespace().count() != 1)
            .map(|(i, _)| {
                Issue::new(&format!("/preserve/{i}"), "each entry must be one word")
                    .help("list the words of a multi-word name separately")
            })
            .collect()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let preserve: Vec<&str> = config.preserve.iter().map(String::as_str).collect();
        let cased = headline(&config.text, config.style, &preserve);
        let changed = cased != config.text;
        Ok(Output {
            text: cased,
            changed,
        })
    }
}

export!(ApHeadline);

/// Cases `text` in the given style.
pub fn headline(text: &str, style: Style, preserve: &[&str]) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let capitalized = words
        .iter()
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .count();
    // Input that is already mostly capitalized says nothing about proper nouns.
    let caps_mean_names = capitalized * 10 < words.len() * 6;
    let last = words.len().saturating_sub(1);
    let mut out = Vec::with_capacity(words.len());
    let mut starts_clause = true;
    for (i, word) in words.iter().enumerate() {
        let core: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
        let listed = preserve.iter().find(|p| {
            let pc: String = p.chars().filter(|c| c.is_alphanumeric()).collect();
            !pc.is_empty() && pc.eq_ignore_ascii_case(&core)
        });
        if let Some(p) = listed {
            out.push(replace_core(word, p));
            starts_clause = word.ends_with(':');
            continue;
        }
        let parts: Vec<&str> = word.split('-').collect();
        let cased = parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let first = j == 0 && starts_clause;
                let edge = first || (i == last && j + 1 == parts.len());
                case_word(part, style, edge, first, caps_mean_names, preserve)
            })
            .collect::<Vec<_>>()
            .join("-");
        starts_clause = word.ends_with(':') || *word == "—" || *word == "-" || word.ends_with('—');
        out.push(cased);
    }
    out.join(" ")
}

/// `edge`: first/last word (titles capitalize it); `first`: first of a clause (always
/// capitalized).
fn case_word(
    word: &str,
    style: Style,
    edge: bool,
    first: bool,
    caps_mean_names: bool,
    preserve: &[&str],
) -> String {
    let core: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
    if core.is_empty() {
        return word.to_owned();
    }
    if let Some(p) = preserve
        .iter()
        .find(|p| p.eq_ignore_ascii_case(&core) || p.eq_ignore_ascii_case(word))
    {
        return replace_core(word, p);
    }
    if is_acronym(word) || is_mixed_case(&core) {
        return word.to_owned();
    }
    let lower = word.to_lowercase();
    match style {
        Style::Title => {
            let small =
                SMALL.contains(&lower.trim_matches(|c: char| !c.is_alphanumeric() && c != '.'));
            if small && !edge {
                lower
            } else {
                capitalize(&lower)
            }
        }
        Style::Sentence => {
            if first {
                capitalize(&lower)
            } else if caps_mean_names && word.chars().next().is_some_and(char::is_uppercase) {
                word.to_owned()
            } else {
                lower
            }
        }
    }
}

fn replace_core(word: &str, with: &str) -> String {
    let start = word.find(|c: char| c.is_alphanumeric()).unwrap_or(0);
    let end = word
        .rfind(|c: char| c.is_alphanumeric())
        .map(|i| i + word[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(word.len());
    format!("{}{}{}", &word[..start], with, &word[end..])
}

/// `NASA`, `U.S.`, `FBI's`: two or more letters, all uppercase.
fn is_acronym(word: &str) -> bool {
    let base = word
        .strip_suffix("'s")
        .or_else(|| word.strip_suffix("’s"))
        .unwrap_or(word);
    let letters: Vec<char> = base.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase())
}

/// `iPhone`, `McDonald`, `eBay`: an uppercase letter after a lowercase one.
fn is_mixed_case(core: &str) -> bool {
    let chars: Vec<char> = core.chars().collect();
    chars
        .windows(2)
        .any(|w| w[0].is_lowercase() && w[1].is_uppercase())
}

fn capitalize(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut done = false;
    for c in word.chars() {
        if !done && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
            done = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title(s: &str) -> String {
        headline(s, Style::Title, &[])
    }

    #[test]
    fn title_case_follows_ap_composition_rules() {
        assert_eq!(
            title("the mayor of springfield says budget is on track"),
            "The Mayor of Springfield Says Budget Is on Track"
        );
        assert_eq!(title("a tale of two cities"), "A Tale of Two Cities");
        assert_eq!(
            title("what the storm left behind"),
            "What the Storm Left Behind"
        );
        // Four letters or more: capitalized even when a preposition.
        assert_eq!(title("rally through the night"), "Rally Through the Night");
        // Last word and the word after a colon are capitalized.
        assert_eq!(title("who is this for"), "Who Is This For");
        assert_eq!(
            title("review: a night at the opera"),
            "Review: A Night at the Opera"
        );
        assert_eq!(
            title("state-of-the-art stadium opens"),
            "State-of-the-Art Stadium Opens"
        );
    }

    #[test]
    fn acronyms_and_brands_survive() {
        assert_eq!(
            title("NASA and the U.S. reveal new iPhone app"),
            "NASA and the U.S. Reveal New iPhone App"
        );
        assert_eq!(
            headline("ebay sales rise", Style::Title, &["eBay"]),
            "eBay Sales Rise"
        );
        assert_eq!(
            headline("floods close i-95 again", Style::Title, &["I-95"]),
            "Floods Close I-95 Again"
        );
    }

    #[test]
    fn sentence_case_keeps_names_and_first_word() {
        assert_eq!(
            headline("Biden visits Ohio after floods", Style::Sentence, &[]),
            "Biden visits Ohio after floods"
        );
        assert_eq!(
            headline(
                "Council Approves New Budget For Schools",
                Style::Sentence,
                &[]
            ),
            "Council approves new budget for schools"
        );
        assert_eq!(
            headline(
                "Storm Hits Coast: Residents Told To Leave",
                Style::Sentence,
                &["Coast"]
            ),
            "Storm hits Coast: Residents told to leave"
        );
    }

    #[test]
    fn check_flags_multi_word_preserve_entries() {
        let issues = testing::validate::<ApHeadline>(&json!({
            "text": "x", "preserve": ["eBay", "New York"]
        }));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].pointer, "/preserve/1");
    }

    #[test]
    fn runs_on_the_whole_with_map() {
        let d = ApHeadline::describe();
        assert_eq!(d.inputs.len(), 1);
        assert!(d.inputs[0].required);
        let out =
            testing::run::<ApHeadline>(json!({"text": "ebay sales rise", "preserve": ["eBay"]}));
        assert_eq!(
            out.unwrap(),
            json!({"text": "eBay Sales Rise", "changed": true})
        );
        let out = testing::run::<ApHeadline>(json!({"text": "Storm Hits", "style": "sentence"}));
        assert_eq!(out.unwrap()["text"], "Storm hits");
    }
}
