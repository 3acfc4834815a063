//! Compile-time diagnostics: what is wrong, where (file:line:col, step) and what to do.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan,
};

use crate::source::Source;

/// One problem in a workflow file.
#[derive(Clone)]
pub struct Problem {
    /// Stable machine-readable class, e.g. `mediaflow::unknown_plugin`.
    pub code: &'static str,
    pub message: String,
    /// The step the problem is in, if any.
    pub step: Option<String>,
    pub span: Option<SourceSpan>,
    pub label: String,
    pub help: Option<String>,
    /// 1-based line and column of the span's start.
    pub line: usize,
    pub column: usize,
    source: Arc<NamedSource<String>>,
    file: String,
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span
            .map(|_| self.source.as_ref() as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            span,
        ))))
    }
}

/// Longest source line shown in a snippet, in characters; longer ones (minified JSON, a
/// pasted blob) are not shown, and the problem names its line and column instead.
const MAX_SNIPPET_LINE: usize = 300;
/// Longest message, label or help printed, in characters (a message may quote a value).
const MAX_TEXT: usize = 1000;

/// `text` without terminal control sequences, so what a plugin logs or returns cannot
/// clear the screen, retitle the window, move the cursor or hide earlier lines: escape
/// sequences (CSI, OSC, DCS and two-byte ones) are dropped, and so is every other control
/// character but newline and tab (a carriage return would overwrite the line).
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, APC, PM, SOS: a string ended by BEL or ESC \.
                Some(']' | 'P' | '_' | '^' | 'X') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // A two-byte sequence (ESC c resets the terminal): drop both.
                _ => {}
            },
            // The 8-bit CSI.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            c if unsafe_char(c) => {}
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` cut to at most `max` characters, marked with `…` where it was cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl Problem {
    /// This problem as it can be printed whatever the input: long texts clipped, and no
    /// snippet when the lines around it are too long to show (miette's renderer cannot
    /// lay out a line of 100,000 characters).
    fn printable(&self) -> Problem {
        let mut p = self.clone();
        p.message = clip(&clean(&p.message), MAX_TEXT);
        p.label = clip(&clean(&p.label), MAX_TEXT);
        p.help = p.help.map(|h| clip(&clean(&h), MAX_TEXT));
        if let Some(span) = p.span {
            if longest_line_around(p.source.inner(), span) > MAX_SNIPPET_LINE {
                p.span = None;
                p.message = format!(
                    "{} (at {}:{}:{}; the line is too long to show)",
                    p.message, p.file, p.line, p.column
                );
            }
        }
        p
    }
}

/// The length in characters of the longest line that a snippet of `span` shows: the
/// lines it covers and one on either side.
fn longest_line_around(text: &str, span: SourceSpan) -> usize {
    let start = span.offset().min(text.len());
    let end = (span.offset() + span.len()).min(text.len());
    let from = text
        .get(..start)
        .and_then(|t| t.rfind('\n'))
        .and_then(|i| text[..i].rfind('\n'))
        .map_or(0, |i| i + 1);
    let to = text
        .get(end..)
        .and_then(|t| t.find('\n'))
        .map(|i| end + i + 1)
        .and_then(|i| {
            text.get(i..)
                .map(|t| t.find('\n').map_or(text.len(), |j| i + j))
        })
        .unwrap_or(text.len());
    text.get(from..to)
        .unwrap_or(text)
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
}

/// Every problem found in one file. The compiler reports them all at once.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// Renders every problem with a caret snippet. `color` is for terminals; tests and
    /// golden files use plain text.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .with_context_lines(1);
        let mut out = String::new();
        for p in &self.problems {
            let p = p.printable();
            if handler.render_report(&mut out, &p).is_err() {
                out.push_str(&format!("{p:?}\n"));
            }
        }
        out.push_str(&format!("{self}\n"));
        out
    }

    /// One line per problem: `file:line:col: step `x`: message`.
    pub fn short(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{}:{}:{}: {p}\n", self.file, p.line, p.column))
            .collect()
    }
}

/// Collects problems while compiling one source.
pub(crate) struct Collector {
    pub source: Source,
    pub problems: Vec<Problem>,
}

impl Collector {
    pub fn new(source: Source) -> Self {
        Collector {
            source,
            problems: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        code: &'static str,
        step: Option<&str>,
        span: Option<SourceSpan>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        let (line, column) = span
            .map(|s| self.source.line_col(s.offset()))
            .unwrap_or((1, 1));
        self.problems.push(Problem {
            code,
            message: message.into(),
            step: step.map(str::to_owned),
            span,
            label: label.into(),
            help,
            line,
            column,
            source: self.source.named(),
            file: self.source.name.clone(),
        });
    }

    pub fn finish(mut self) -> Result<Source, Diagnostics> {
        if self.problems.is_empty() {
            Ok(self.source)
        } else {
            self.problems.sort_by_key(|p| (p.line, p.column));
            Err(Diagnostics {
                file: self.source.name.clone(),
                problems: self.problems,
            })
        }
    }
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn control_sequences_are_dropped() {
        let hostile = "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}cline\rover\u{9b}31mred\u{1b}]8;;x\u{1b}\\ end\n\tnext";
        assert_eq!(clean(hostile), "oklineoverred end\n\tnext");
        assert!(matches!(clean("plain ✓"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn suggests_near_names_only() {
        let names = ["text.template", "json.pick", "file.read"];
        assert_eq!(super::suggest("text.templat", names), Some("text.template"));
        assert_eq!(super::suggest("llm.generate", names), None);
    }
}
