//! Broken inputs, each made from a real object by changing one field: every one is a clear error naming the
//! file (and where it applies the section, offset or symbol), never a panic. (`hcr build`'s tests show that a
//! refused object leaves the executable as it was.)

use std::path::Path;

use got_linker::InputError;
use got_linker::input::parse_object;
use got_linker::tbd::parse_tbd;
use object::LittleEndian as LE;
use object::macho;
use object::read::macho::{MachHeader as _, Section as _, Segment as _};

use crate::incremental::Workspace;

const SOURCE: &str =
    "int counter;\nint bump(int x) { counter += x; return counter; }\nint main(void) { return bump(2); }\n";

fn object_bytes() -> (Workspace, Vec<u8>, std::path::PathBuf) {
    let mut ws = Workspace::new("-O0");
    let objects = ws.objects(&[("prog", SOURCE.into())]);
    let path = objects[0].path.clone();
    let bytes = std::fs::read(&path).unwrap();
    (ws, bytes, path)
}

/// File offsets of interesting fields of the object: the first section header, the `__text` relocations, and
/// the symbol table.
struct Fields {
    text_section_header: usize,
    text_relocs: usize,
    symtab: usize,
}

fn fields(bytes: &[u8]) -> Fields {
    let header = macho::MachHeader64::<LE>::parse(bytes, 0).unwrap();
    let mut commands = header.load_commands(LE, bytes, 0).unwrap();
    let (mut text_section_header, mut text_relocs, mut symtab) = (0, 0, 0);
    let mut offset = std::mem::size_of::<macho::MachHeader64<LE>>();
    while let Some(command) = commands.next().unwrap() {
        if let Some((segment, data)) = command.segment_64().unwrap() {
            let sections = segment.sections(LE, data).unwrap();
            let first = offset + std::mem::size_of::<macho::SegmentCommand64<LE>>();
            for (i, section) in sections.iter().enumerate() {
                if &section.sectname[..6] == b"__text" {
                    text_section_header = first + i * std::mem::size_of::<macho::Section64<LE>>();
                    text_relocs = section.reloff(LE) as usize;
                }
            }
        } else if let Some(table) = command.symtab().unwrap() {
            symtab = table.symoff.get(LE) as usize;
        }
        offset += command.cmdsize() as usize;
    }
    Fields { text_section_header, text_relocs, symtab }
}

fn assert_error_names_file(
    result: Result<got_linker::input::InputObject, InputError>,
    path: &Path,
) -> String {
    let err = result.expect_err("the broken object must be refused");
    let message = err.to_string();
    assert!(message.starts_with(&path.display().to_string()), "{message}");
    message
}

#[test]
fn a_relocation_pointing_outside_its_section_is_refused() {
    let (_ws, mut bytes, path) = object_bytes();
    let f = fields(&bytes);
    // r_address of the first relocation of __text: far past the section's end.
    bytes[f.text_relocs..f.text_relocs + 4].copy_from_slice(&0x00ff_fff0u32.to_le_bytes());
    let message = assert_error_names_file(parse_object(&path, &bytes), &path);
    assert!(message.contains("__TEXT,__text") && message.contains("past the end"), "{message}");
}

#[test]
fn a_symbol_with_a_bad_string_index_is_refused() {
    let (_ws, mut bytes, path) = object_bytes();
    let f = fields(&bytes);
    // n_strx of the first symbol: far outside the string table.
    bytes[f.symtab..f.symtab + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    assert_error_names_file(parse_object(&path, &bytes), &path);
}

#[test]
fn a_giant_section_size_is_refused_without_allocating_it() {
    let (_ws, mut bytes, path) = object_bytes();
    let f = fields(&bytes);
    // Section64.size is at offset 40 in the header (sectname 16, segname 16, addr 8).
    let size = f.text_section_header + 40;
    bytes[size..size + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert_error_names_file(parse_object(&path, &bytes), &path);
}

#[test]
fn a_malformed_text_stub_is_refused_with_its_path() {
    let path = Path::new("/sdk/usr/lib/libSystem.tbd");
    for text in [
        "--- !tapi-tbd\ntbd-version: 4\ntargets: [ arm64-macos\n",
        "--- !tapi-tbd\ntbd-version: 4\ninstall-name: 7\n...\n",
        "",
        "\u{0}\u{1}binary",
    ] {
        let err = parse_tbd(path, text).expect_err("malformed");
        assert!(err.to_string().contains("libSystem.tbd"), "{err}");
    }
}

/// Inputs the fuzzer (`fuzz/`, `cargo fuzz run -s none ingest`) found crashing, kept as regressions: each is an
/// error or an object, and an object links or fails to link with an error.
#[test]
fn inputs_the_fuzzer_found_are_errors_not_panics() {
    let dir = crate::support::root().join("fuzz/regressions/ingest");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(object) = parse_object(&path, &bytes) {
            let mut linker = got_linker::Linker::new("fuzz", None, Default::default(), Vec::new());
            let _ = linker.update(&[object], &got_linker::NothingLive);
        }
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs in {}", dir.display());
}
