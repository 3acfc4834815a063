//! Reading newline-delimited messages with a limit on line length, so a peer that never
//! sends a newline costs a bounded amount of memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its newline (lossily decoded as UTF-8).
    Text(String),
    /// A line longer than the limit: its bytes were skipped up to the next newline.
    TooLong { bytes: usize },
    /// The stream ended.
    Eof,
}

/// Reads one line of at most `max` bytes.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if total == 0 {
                Line::Eof
            } else if total > max {
                Line::TooLong { bytes: total }
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
        let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        total += chunk.len();
        if total <= max {
            line.extend_from_slice(chunk);
        } else {
            line = Vec::new();
        }
        let used = chunk.len() + usize::from(found);
        reader.consume(used);
        if found {
            return Ok(if total > max {
                Line::TooLong { bytes: total }
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_not_kept() {
        let data = format!("short\n{}\nnext\nlast", "x".repeat(100));
        let mut r = tokio::io::BufReader::with_capacity(8, data.as_bytes());
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("short".into())
        );
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::TooLong { bytes: 100 }
        );
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("next".into())
        );
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("last".into())
        );
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::Eof);
    }
}
