//! Source text and the mapping from YAML markers to byte spans.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A workflow file's text and name, shared by every diagnostic about it.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
    named: Arc<NamedSource<String>>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let name = name.into();
        let text: String = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            named: Arc::new(NamedSource::new(name.clone(), text.clone()).with_language("yaml")),
            name,
            text: text.into(),
            line_starts,
        }
    }

    pub fn named(&self) -> Arc<NamedSource<String>> {
        self.named.clone()
    }

    /// Byte offset of 1-based `line` and 1-based character `column`.
    pub fn offset(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let skip = column.saturating_sub(1);
        rest.char_indices()
            .nth(skip)
            .map(|(i, _)| start + i)
            .unwrap_or(self.text.len())
            .min(self.text.len())
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts[line];
        let col = self.text[start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        (line + 1, col)
    }

    fn marker_offset(&self, m: &marked_yaml::Marker) -> usize {
        self.offset(m.line(), m.column())
    }

    /// The span of a scalar (its raw text, quotes included).
    pub fn scalar_span(&self, span: &marked_yaml::Span, value: &str) -> SourceSpan {
        let Some(start) = span.start() else {
            return SourceSpan::from((0, 0));
        };
        let at = self.marker_offset(start);
        let rest = &self.text[at..];
        let line = rest.split('\n').next().unwrap_or("");
        let len = if let Some(q) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
            closing_quote(line, q).unwrap_or(line.len())
        } else if !value.is_empty() && rest.starts_with(value) {
            value.len()
        } else {
            let trimmed = match line.find(" #") {
                Some(i) => &line[..i],
                None => line,
            };
            trimmed.trim_end().len()
        };
        SourceSpan::from((at, len.max(1)))
    }

    /// The span of any node: scalars exactly, collections from start to end when known.
    pub fn node_span(&self, node: &marked_yaml::Node) -> SourceSpan {
        match node {
            marked_yaml::Node::Scalar(s) => self.scalar_span(s.span(), s.as_str()),
            other => {
                let span = other.span();
                let Some(start) = span.start() else {
                    return SourceSpan::from((0, 0));
                };
                let at = self.marker_offset(start);
                // Block collections have no useful end marker: underline the first line.
                let line = self.text[at..].split('\n').next().unwrap_or("");
                SourceSpan::from((at, line.trim_end().len().max(1)))
            }
        }
    }

    /// A span covering one byte at a marker (for syntax errors).
    pub fn point(&self, marker: &marked_yaml::Marker) -> SourceSpan {
        let at = self.marker_offset(marker).min(self.text.len());
        SourceSpan::from((at, if at < self.text.len() { 1 } else { 0 }))
    }
}

fn closing_quote(line: &str, quote: char) -> Option<usize> {
    let mut chars = line.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().map(|(_, c)| *c) == Some('\'') {
                chars.next();
                continue;
            }
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_line_columns_round_trip() {
        let src = Source::new("x.yaml", "a: 1\nbé: \"two\"\n");
        let off = src.offset(2, 5);
        assert_eq!(&src.text[off..off + 5], "\"two\"");
        assert_eq!(src.line_col(off), (2, 5));
    }

    #[test]
    fn quoted_scalars_span_their_quotes() {
        assert_eq!(closing_quote(r#""a\"b" # c"#, '"'), Some(6));
        assert_eq!(closing_quote("'it''s' x", '\''), Some(7));
    }
}
