//! The control-socket protocol: newline-delimited JSON, one request in, one response out.
//!
//! Editors and test harnesses drive `hcr run --listen unix:PATH` through it; `docs/protocol.md` is the
//! user-facing description and this module is its single implementation. Parsing is strict about what it needs
//! (an integer `id`, a known `cmd`) and lenient about the rest (unknown fields are ignored, so a newer client can
//! talk to an older hcr). A request line longer than [`MAX_REQUEST_BYTES`] is answered with an error and skipped
//! without ever being held in memory whole, and the connection carries on.

use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version, sent in the greeting. It changes only when a change would break existing clients.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line accepted. Requests are a few dozen bytes; this leaves room for long symbol names.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A command, as the `cmd` field names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// The process, the link state and the last update.
    Status,
    /// Recompile and relink the file only; the running process is left alone.
    Update,
    /// Launch the program (again).
    Run,
    /// `update`, then `run`.
    UpdateAndRun,
    /// Recompile, relink, and patch the running process.
    HotUpdate,
    /// Re-apply a global's initializer in the running process.
    Reset { name: String },
    /// The image's map, or one symbol's place in it.
    Layout {
        #[serde(default)]
        symbol: Option<String>,
    },
    /// Stop the program and hcr.
    Exit,
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub command: Command,
}

/// What kind of failure a response reports; clients branch on it, people read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not JSON, lacks an integer `id`, or names no known command.
    BadRequest,
    /// The request line is longer than [`MAX_REQUEST_BYTES`].
    TooLong,
    /// clang rejected a source file; nothing was changed.
    Compile,
    /// The link failed (undefined or duplicate symbol, relocation out of range, …); nothing was changed.
    Link,
    /// Applying the update to the process failed.
    Patch,
    /// There is no running process to act on.
    NoProcess,
    /// Another update is in progress.
    Busy,
    /// The executable could not be written (a full disk, a read-only folder, the name taken); nothing was
    /// changed.
    File,
    /// Anything else.
    Internal,
}

/// A failed request: the `id` when one could be read, the kind and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub id: Option<u64>,
    pub kind: ErrorKind,
    pub message: String,
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let bad = |id, message: String| RequestError { id, kind: ErrorKind::BadRequest, message };
    let value: Value = serde_json::from_slice(line).map_err(|e| bad(None, format!("not JSON: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(bad(None, "a request is a JSON object like {\"id\":1,\"cmd\":\"status\"}".into()));
    };
    let id = match fields.get("id") {
        Some(id) => {
            Some(id.as_u64().ok_or_else(|| bad(None, format!("`id` must be an integer ≥ 0, not {id}")))?)
        }
        None => None,
    };
    let command = Command::deserialize(&value).map_err(|e| bad(id, format!("bad command: {e}")))?;
    let id = id.ok_or_else(|| bad(None, "missing `id`".into()))?;
    Ok(Request { id, command })
}

/// The greeting hcr sends first on every connection.
pub fn greeting() -> String {
    serde_json::json!({ "event": "hello", "protocol": PROTOCOL_VERSION, "hcr": env!("CARGO_PKG_VERSION") })
        .to_string()
}

/// A successful response line (without its newline).
pub fn ok_response(id: u64, report: Value) -> String {
    serde_json::json!({ "id": id, "ok": true, "report": report }).to_string()
}

/// A failed response line (without its newline). `id` is `null` when the request had none that could be read.
pub fn error_response(error: &RequestError) -> String {
    serde_json::json!({
        "id": error.id,
        "ok": false,
        "error": { "kind": error.kind, "message": error.message },
    })
    .to_string()
}

/// One line read by [`read_line_bounded`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Line(Vec<u8>),
    /// A line longer than the limit; it was consumed and dropped. `len` is its length without the newline.
    TooLong { len: usize },
    /// The peer closed the connection.
    Eof,
}

/// Reads one line of at most `max` bytes. A longer line is consumed to its end without being stored, so a
/// client cannot make hcr hold an arbitrarily large request, and the next line is read normally.
pub fn read_line_bounded(reader: &mut impl BufRead, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut len = 0usize;
    let mut started = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(match (started, len > max) {
                (false, _) => Line::Eof,
                (true, true) => Line::TooLong { len },
                (true, false) => Line::Line(line),
            });
        }
        started = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(newline) => (&buf[..newline], Some(newline + 1)),
            None => (buf, None),
        };
        len += chunk.len();
        if len <= max {
            line.extend_from_slice(chunk);
        } else {
            line = Vec::new();
        }
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if len > max { Line::TooLong { len } } else { Line::Line(line) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;

    #[test]
    fn parses_every_command() {
        let cases = [
            (r#"{"id":1,"cmd":"status"}"#, Command::Status),
            (r#"{"id":2,"cmd":"update"}"#, Command::Update),
            (r#"{"id":3,"cmd":"run"}"#, Command::Run),
            (r#"{"id":3,"cmd":"update_and_run"}"#, Command::UpdateAndRun),
            (r#"{"id":4,"cmd":"hot_update"}"#, Command::HotUpdate),
            (r#"{"id":5,"cmd":"reset","name":"counter"}"#, Command::Reset { name: "counter".into() }),
            (r#"{"id":6,"cmd":"layout"}"#, Command::Layout { symbol: None }),
            (r#"{"id":7,"cmd":"layout","symbol":"_bar"}"#, Command::Layout { symbol: Some("_bar".into()) }),
            (r#"{"id":8,"cmd":"exit","future_field":true}"#, Command::Exit),
        ];
        for (line, command) in cases {
            let request = parse_request(line.as_bytes()).unwrap();
            assert_eq!(request.command, command, "{line}");
        }
        assert_eq!(parse_request(br#"{"cmd":"status","id":42}"#).unwrap().id, 42);
    }

    #[test]
    fn bad_requests_keep_the_id_when_there_is_one() {
        let err = parse_request(br#"{"id":9,"cmd":"explode"}"#).unwrap_err();
        assert_eq!((err.id, err.kind), (Some(9), ErrorKind::BadRequest));
        assert!(err.message.contains("explode"), "{}", err.message);

        let err = parse_request(br#"{"id":9,"cmd":"reset"}"#).unwrap_err();
        assert!(err.message.contains("name"), "{}", err.message);

        for line in [&b"not json"[..], b"[1,2]", br#"{"cmd":"status"}"#, br#"{"id":-1,"cmd":"status"}"#] {
            let err = parse_request(line).unwrap_err();
            assert_eq!(
                (err.id, err.kind),
                (None, ErrorKind::BadRequest),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn responses_are_single_json_lines() {
        let ok = ok_response(3, serde_json::json!({"changed": 1}));
        assert_eq!(ok, r#"{"id":3,"ok":true,"report":{"changed":1}}"#);
        let err =
            error_response(&RequestError { id: None, kind: ErrorKind::TooLong, message: "x\ny".into() });
        assert!(!err.contains('\n'));
        let value: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(value["error"]["kind"], "too_long");
        assert_eq!(value["id"], Value::Null);
        let hello: Value = serde_json::from_str(&greeting()).unwrap();
        assert_eq!(hello["protocol"], PROTOCOL_VERSION);
    }

    #[test]
    fn an_oversized_line_is_skipped_and_the_next_one_read() {
        let mut input = vec![b'x'; 10 * 1024 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"{\"id\":1,\"cmd\":\"status\"}\n");
        input.extend_from_slice(b"tail-without-newline");
        // A small buffer makes the reader cross many buffer boundaries inside one line.
        let mut reader = BufReader::with_capacity(4096, &input[..]);

        assert_eq!(
            read_line_bounded(&mut reader, MAX_REQUEST_BYTES).unwrap(),
            Line::TooLong { len: 10 << 20 }
        );
        let Line::Line(line) = read_line_bounded(&mut reader, MAX_REQUEST_BYTES).unwrap() else { panic!() };
        assert_eq!(parse_request(&line).unwrap().command, Command::Status);
        assert_eq!(
            read_line_bounded(&mut reader, MAX_REQUEST_BYTES).unwrap(),
            Line::Line(b"tail-without-newline".to_vec())
        );
        assert_eq!(read_line_bounded(&mut reader, MAX_REQUEST_BYTES).unwrap(), Line::Eof);
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_accepted() {
        let mut input = vec![b'a'; 16];
        input.push(b'\n');
        let mut reader = BufReader::with_capacity(3, &input[..]);
        assert_eq!(read_line_bounded(&mut reader, 16).unwrap(), Line::Line(vec![b'a'; 16]));
        let mut reader = BufReader::with_capacity(3, &input[..]);
        assert_eq!(read_line_bounded(&mut reader, 15).unwrap(), Line::TooLong { len: 16 });
    }
}
