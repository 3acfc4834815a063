//! SRT and WebVTT from timed segments.

use serde::Serialize;

/// One stretch of speech, in seconds from the start of the audio.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// Subtitle lines are wrapped at this many characters (the common broadcast limit).
const LINE: usize = 42;

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

/// Wraps text into lines of at most [`LINE`] characters, at spaces.
fn wrap(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > LINE {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            stamp(s.start, ','),
            stamp(s.end, ','),
            wrap(&s.text)
        ));
    }
    out
}

pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        // "-->" inside a cue would end it early.
        let text = wrap(&s.text).replace("-->", "->");
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(s.start, '.'),
            stamp(s.end, '.'),
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
        let srt = srt(&s);
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n"));
        assert!(srt.contains("3\n01:01:01,250 --> 01:01:02,000\nAn hour in, and a line that is long enough\nto need wrapping here.\n\n"), "{srt}");
        let vtt = vtt(&s);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n"));
    }
}
