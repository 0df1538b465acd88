//! Any text given as a `.tbd` text stub: an error or a stub, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = got_linker::tbd::parse_tbd(std::path::Path::new("fuzz.tbd"), &text);
});
