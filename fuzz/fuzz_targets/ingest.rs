//! Any bytes given as an object file: an error or an object, never a panic; and an object that parses links or
//! fails to link with an error.
#![no_main]

use got_linker::input::parse_object;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.o");
    if let Ok(object) = parse_object(path, data) {
        let _ = got_linker::input::describe(&object);
        let mut linker = got_linker::Linker::new("fuzz", None, Default::default(), Vec::new());
        let _ = linker.update(&[object], &got_linker::NothingLive);
    }
});
