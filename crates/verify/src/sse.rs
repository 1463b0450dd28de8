//! A small, bounded Server-Sent Events parser (WHATWG HTML §9.2.6, "Interpreting an event
//! stream").
//!
//! It is fed raw byte chunks as they arrive from the HTTP body and yields complete events and
//! comments. Written here rather than pulled in because the feed needs exactly three things a
//! generic client hides or gets wrong for us: comments (`: keep-alive`) must be observable, since
//! they prove the feed is alive; the `id` field must be tracked exactly, since it is our resume
//! cursor; and every buffer must be bounded, since the server is trusted only so far.

use std::fmt;

/// One thing the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseItem {
    /// A dispatched event (a blank line ended a block with at least one `data` line).
    Event {
        /// The `id` field of this block, if it had one.
        id: Option<String>,
        /// The `event` field, `"message"` when absent.
        event: String,
        /// The `data` lines joined with `\n`.
        data: String,
    },
    /// A comment line (`:` first); the server's keep-alive.
    Comment,
}

/// The stream broke a limit or was not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseError {
    /// A single line exceeded the limit.
    LineTooLong,
    /// The data of one event exceeded the limit.
    EventTooLarge,
    /// A line was not valid UTF-8.
    InvalidUtf8,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SseError::LineTooLong => "event-stream line too long",
            SseError::EventTooLarge => "event-stream event too large",
            SseError::InvalidUtf8 => "event-stream line is not UTF-8",
        })
    }
}

/// Incremental parser state.
#[derive(Debug)]
pub(crate) struct SseParser {
    max_line: usize,
    max_event: usize,
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    skip_lf: bool,
    id: Option<String>,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser that refuses lines longer than `max_line` bytes and events whose data exceeds
    /// `max_event` bytes.
    pub(crate) fn new(max_line: usize, max_event: usize) -> Self {
        Self {
            max_line,
            max_event,
            line: Vec::new(),
            skip_lf: false,
            id: None,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Consumes a chunk, appending every completed item to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        let mut rest = chunk;
        if rest.is_empty() {
            return Ok(());
        }
        if self.skip_lf {
            if let Some(b'\n') = rest.first() {
                rest = &rest[1..];
            }
            self.skip_lf = false;
        }
        while !rest.is_empty() {
            // Lines end in CRLF, LF or CR (§9.2.5).
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    if self.line.len() + pos > self.max_line {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.extend_from_slice(&rest[..pos]);
                    let was_cr = rest[pos] == b'\r';
                    rest = &rest[pos + 1..];
                    if was_cr {
                        match rest.first() {
                            Some(b'\n') => rest = &rest[1..],
                            None => self.skip_lf = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out)?;
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    if self.line.len() + rest.len() > self.max_line {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        if line.starts_with(':') {
            out.push(SseItem::Comment);
            return Ok(());
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(SseError::EventTooLarge);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            // An id containing NUL is ignored (§9.2.6).
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry` and unknown fields are ignored; our backoff policy is our own.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            // A block without data dispatches nothing (§9.2.6), but its id still counts.
            return;
        }
        self.has_data = false;
        out.push(SseItem::Event {
            id: self.id.take(),
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut p = SseParser::new(1024, 4096);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseItem {
        SseItem::Event {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_comments_and_ids() {
        let out = parse_chunks(&[
            b": keep-alive\n\nid: 7\nevent: revocation\ndata: {\"a\":1}\n\n",
            b"data:x\ndata: y\n\n",
        ]);
        assert_eq!(
            out,
            vec![
                SseItem::Comment,
                ev(Some("7"), "revocation", "{\"a\":1}"),
                ev(None, "message", "x\ny"),
            ]
        );
    }

    #[test]
    fn every_split_point_and_line_ending_gives_the_same_result() {
        let text: &[u8] = b"id: 1\r\nevent: revocation\r\ndata: abc\r\n\r\n: c\rid: 2\rdata: d\r\r";
        let whole = parse_chunks(&[text]);
        assert_eq!(
            whole,
            vec![
                ev(Some("1"), "revocation", "abc"),
                SseItem::Comment,
                ev(Some("2"), "message", "d")
            ]
        );
        for i in 0..text.len() {
            for j in i..text.len() {
                let got = parse_chunks(&[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        assert_eq!(parse_chunks(&[b"id: 3\ndata: partial\n"]), vec![]);
    }

    #[test]
    fn limits_are_enforced() {
        let mut p = SseParser::new(16, 32);
        let mut out = Vec::new();
        assert_eq!(
            p.push(&[b'a'; 17], &mut out),
            Err(SseError::LineTooLong),
            "unterminated long line"
        );
        let mut p = SseParser::new(16, 30);
        assert_eq!(
            p.push(
                b"data: 0123456789\ndata: 0123456789\ndata: 0123456789\n",
                &mut out
            ),
            Err(SseError::EventTooLarge)
        );
        let mut p = SseParser::new(16, 32);
        assert_eq!(
            p.push(b"data: \xff\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }
}
