use super::*;

/// `text`'s words spoken one after another at `rate` words a second, with a pause of
/// `pause` seconds after each sentence.
fn spoken(text: &str, rate: f64, pause: f64) -> Vec<Word> {
    let mut t = 0.3;
    let mut out = Vec::new();
    for w in text.split_whitespace() {
        let d = (0.12 + 0.045 * w.chars().count() as f64) * 2.5 / rate;
        out.push(Word {
            word: w.to_owned(),
            start: t,
            end: t + d,
            probability: 0.9,
        });
        t += d + 0.05;
        if w.ends_with(['.', '?', '!']) {
            t += pause;
        }
    }
    out
}

const BULLETIN: &str = "Good evening. Here is the news. The city council approved a new \
bridge across the river on Tuesday night, ending years of debate over the crossing. Opponents \
said the money should have been spent on flood protection after the storms of last winter, but \
the council said the bridge would take thousands of cars a day off the inner ring road. Work \
is expected to start in the autumn. In other news, train drivers will strike on Friday after \
talks over pay broke down, the union said. Passengers are advised to check before they travel. \
That is all from us. Good night.";

fn joined(cues: &[Cue]) -> String {
    cues.iter().map(Cue::text).collect::<Vec<_>>().join(" ")
}

#[test]
fn a_bulletin_gets_cues_within_every_limit_holding_the_whole_text() {
    let l = Limits::default();
    for (rate, pause) in [(2.2, 0.4), (2.6, 0.2), (3.0, 0.1)] {
        let words = spoken(BULLETIN, rate, pause);
        let cues = build(&words, &l);
        let bad = violations(&cues, &l);
        assert!(bad.is_empty(), "{rate} words/s:\n{}", bad.join("\n"));
        assert_eq!(
            joined(&cues).split_whitespace().collect::<Vec<_>>(),
            BULLETIN.split_whitespace().collect::<Vec<_>>()
        );
        // Sentence ends come first: no cue ends mid-sentence where the sentence end was in
        // reach, and most cues end at a sentence or clause boundary.
        let clean = cues
            .iter()
            .filter(|c| c.text().ends_with(['.', ',', '?', '!']))
            .count();
        assert!(clean * 3 >= cues.len() * 2, "{rate}: {cues:#?}");
        for c in &cues {
            if c.lines.len() == 2 {
                let (a, b) = (len(&c.lines[0]) as i64, len(&c.lines[1]) as i64);
                assert!((a - b).abs() <= 22, "unbalanced: {c:?}");
            }
        }
    }
}

#[test]
fn lines_break_at_clauses_and_not_after_articles() {
    let l = Limits::default();
    let words: Vec<&str> =
        "The council approved a bridge on Tuesday, but critics said the money was wasted."
            .split_whitespace()
            .collect();
    let (lines, _) = lines(&words, &l).unwrap();
    assert_eq!(lines.len(), 2);
    for x in &lines {
        assert!(len(x) <= 42, "{x:?}");
        assert!(!x.ends_with(" the") && !x.ends_with(" a"), "{lines:?}");
    }
    assert_eq!(lines[0], "The council approved a bridge on Tuesday,");
    // Too long for two lines.
    let long: Vec<&str> = BULLETIN.split_whitespace().take(30).collect();
    assert!(super::lines(&long, &l).is_none());
}

#[test]
fn short_sentences_are_not_left_alone_and_odd_input_does_not_break_the_builder() {
    let l = Limits::default();
    let words = spoken("Good night.", 2.5, 0.0);
    let cues = build(&words, &l);
    assert_eq!(cues.len(), 1);
    assert!(cues[0].end - cues[0].start >= l.min_duration - 1e-9);
    assert!(build(&[], &l).is_empty());

    // A "word" longer than a line gets a cue of its own; fast speech still gives ordered
    // cues holding every word.
    let mut words = spoken(&"word ".repeat(40), 9.0, 0.0);
    words[5].word = "x".repeat(60);
    let cues = build(&words, &l);
    assert_eq!(joined(&cues).split_whitespace().count(), 40);
    for pair in cues.windows(2) {
        assert!(
            pair[1].start >= pair[0].end && pair[0].end > pair[0].start,
            "{cues:?}"
        );
    }
    // The checker reports what breaks the limits.
    let bad = violations(
        &[Cue {
            start: 0.0,
            end: 0.5,
            lines: vec!["a".repeat(50), "b".into(), "c".into()],
        }],
        &l,
    );
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].contains("3 lines") && bad[0].contains("50 characters") && bad[0].contains("0.50 s"),
        "{bad:?}"
    );
}
