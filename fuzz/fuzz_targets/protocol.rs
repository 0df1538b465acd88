//! Any bytes from a control-socket client: every line is an answerable request or an error, never a panic, and
//! no line is held past the limit.
#![no_main]

use hcr_driver::protocol::{Line, MAX_REQUEST_BYTES, error_response, parse_request, read_line_bounded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = std::io::BufReader::new(data);
    while let Ok(line) = read_line_bounded(&mut reader, MAX_REQUEST_BYTES) {
        match line {
            Line::Line(bytes) => {
                assert!(bytes.len() <= MAX_REQUEST_BYTES);
                if let Err(e) = parse_request(&bytes) {
                    let _ = error_response(&e);
                }
            }
            Line::TooLong { .. } => {}
            Line::Eof => break,
        }
    }
});
