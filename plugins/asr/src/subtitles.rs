//! Timed segments tidied, and SRT and WebVTT from subtitle cues (`cues.rs` builds them).

use serde::Serialize;

use crate::cues::Cue;

/// One stretch of speech, in seconds from the start of the audio.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// Makes times usable as cues: each segment starts no earlier than the previous one ends
/// and lasts at least a tenth of a second; blank segments are dropped.
pub fn tidy(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    let mut prev_end = 0.0f64;
    for s in segments {
        let text = s.text.trim().to_owned();
        if text.is_empty() {
            continue;
        }
        let start = s.start.max(prev_end).max(0.0);
        let end = s.end.max(start + 0.1);
        prev_end = end;
        out.push(Segment { start, end, text });
    }
    out
}

fn stamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

pub fn srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            stamp(c.start, ','),
            stamp(c.end, ','),
            c.lines.join("\n")
        ));
    }
    out
}

pub fn vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        // "-->" inside a cue would end it early.
        let text = c.lines.join("\n").replace("-->", "->");
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(c.start, '.'),
            stamp(c.end, '.'),
            text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            start,
            end,
            text: text.into(),
        }
    }

    #[test]
    fn srt_and_vtt_format() {
        let s = tidy(vec![
            seg(0.0, 2.5, " Hello there."),
            seg(2.4, 2.4, "Overlap"),
            seg(3.0, 3.5, "   "),
            seg(
                3661.25,
                3662.0,
                "An hour in, and a line that is long enough to need wrapping here.",
            ),
        ]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].start, 2.5);
        assert!((s[1].end - 2.6).abs() < 1e-9);
        let cues: Vec<Cue> = s
            .iter()
            .map(|x| Cue {
                start: x.start,
                end: x.end,
                lines: if x.text.len() > 42 {
                    vec![
                        "An hour in, and a line that is long enough".into(),
                        "to need wrapping here.".into(),
                    ]
                } else {
                    vec![x.text.clone()]
                },
            })
            .collect();
        let srt = srt(&cues);
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n"));
        assert!(srt.contains("3\n01:01:01,250 --> 01:01:02,000\nAn hour in, and a line that is long enough\nto need wrapping here.\n\n"), "{srt}");
        let vtt = vtt(&cues);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n"));
    }
}
