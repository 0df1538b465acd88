//! Integration tests: ingest what clang-19 really emits for arm64 macOS.

use std::path::{Path, PathBuf};
use std::process::Command;

use got_linker::InputError;
use got_linker::input::{
    InputObject, RelocKind, RelocTarget, SectionKind, SymbolDef, describe, parse_object,
};
use got_linker::resolve::{Resolution, ResolveError, resolve};
use got_linker::tbd::parse_tbd;

/// Compiles C source text to an object with clang-19 and returns its path (inside `dir`).
fn compile(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let object = dir.join(format!("{name}.o"));
    let out = Command::new("clang-19")
        .args(["--target=arm64-apple-macos13", "-ffreestanding", "-fno-asynchronous-unwind-tables", "-c"])
        .args(flags)
        .arg(&c)
        .arg("-o")
        .arg(&object)
        .output()
        .expect("clang-19 must be installed (cargo xtask setup)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    object
}

fn ingest(path: &Path) -> Result<InputObject, InputError> {
    parse_object(path, &std::fs::read(path).unwrap())
}

fn target_name(object: &InputObject, target: RelocTarget) -> String {
    match target {
        RelocTarget::Symbol(s) => object.symbols[s as usize].name.clone(),
        RelocTarget::Atom { atom, .. } => object.atom_name(atom),
    }
}

const PROGRAM: &str = r#"
extern int shared;
static int counter;
int table[64];
const char *names[] = {"alpha", "beta"};
static int helper(int x) { return x * 3 + counter; }
int (*fp)(int) = helper;
int get(int i) { counter++; return helper(i) + table[50] + shared + names[i][0]; }
"#;

#[test]
fn atoms_and_relocations_of_a_real_object() {
    let dir = tempfile::tempdir().unwrap();
    let object = ingest(&compile(dir.path(), "prog", PROGRAM, &["-O2"])).unwrap();
    insta::assert_snapshot!(describe(&object));
}

#[test]
fn every_optimisation_level_ingests_and_every_target_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let switchy = "int sw(int x) { switch (x) { case 0: return 3; case 1: return 7; case 2: return 1; case 3: return 9;\
                   case 4: return 4; case 5: return 8; case 6: return 2; case 7: return 6; case 8: return 5; default: return 0; } }\n\
                   typedef struct { double v[4]; } Vec4;\n\
                   Vec4 scale(Vec4 a, double k) { for (int i = 0; i < 4; i++) a.v[i] *= k; return a; }\n\
                   float sum(const float *p, int n) { float s = 0; for (int i = 0; i < n; i++) s += p[i]; return s; }\n";
    for level in ["-O0", "-O1", "-O2", "-O3"] {
        for (name, source) in [("prog", PROGRAM), ("switchy", switchy)] {
            let path = compile(
                dir.path(),
                &format!("{name}{level}"),
                source,
                &[level, "-mllvm", "-aarch64-enable-global-merge=false"],
            );
            let object = ingest(&path).unwrap_or_else(|e| panic!("{level} {name}: {e}"));
            for reloc in &object.relocs {
                let atom = &object.atoms[reloc.atom as usize];
                assert!(reloc.offset < atom.size, "{level} {name}: relocation outside its atom");
                match reloc.target {
                    RelocTarget::Symbol(s) => match object.symbols[s as usize].def {
                        SymbolDef::Defined { .. } => assert!(object.symbol_atom(s).is_some()),
                        SymbolDef::Undefined | SymbolDef::Common { .. } => {}
                        SymbolDef::Absolute(_) => panic!("{level} {name}: relocation to an absolute symbol"),
                    },
                    RelocTarget::Atom { atom, offset } => assert!(offset <= object.atoms[atom as usize].size),
                }
            }
        }
    }
}

#[test]
fn addend_prefixes_fold_into_page_relocations() {
    let dir = tempfile::tempdir().unwrap();
    let object = ingest(&compile(dir.path(), "prog", PROGRAM, &["-O2"])).unwrap();
    // table[50] at -O2: ADDEND 200 before both the PAGE21 and the PAGEOFF12.
    let to_table: Vec<_> =
        object.relocs.iter().filter(|r| target_name(&object, r.target) == "_table").collect();
    assert_eq!(to_table.len(), 2);
    assert!(to_table.iter().all(|r| r.addend == 200));
    assert_eq!(
        to_table.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RelocKind::Page21, RelocKind::PageOff12]
    );
    // The extern int goes through the GOT.
    let shared: Vec<_> = object
        .relocs
        .iter()
        .filter(|r| target_name(&object, r.target) == "_shared")
        .map(|r| r.kind)
        .collect();
    assert_eq!(shared, [RelocKind::GotLoadPage21, RelocKind::GotLoadPageOff12]);
}

#[test]
fn string_literals_are_split_and_data_pointers_carry_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let object = ingest(&compile(dir.path(), "prog", PROGRAM, &["-O0"])).unwrap();
    let strings: Vec<&[u8]> = object
        .atoms
        .iter()
        .enumerate()
        .filter(|(_, a)| object.sections[a.section as usize].kind == SectionKind::CString)
        .map(|(i, _)| object.atom_bytes(i as u32))
        .collect();
    assert_eq!(strings, [&b"alpha\0"[..], b"beta\0"]);
    let names_atom = object
        .atoms
        .iter()
        .position(|a| a.symbols.iter().any(|&s| object.symbols[s as usize].name == "_names"))
        .unwrap();
    let pointers: Vec<(u64, RelocKind, String)> = object
        .atom_relocs(names_atom as u32)
        .iter()
        .map(|r| (r.offset, r.kind, target_name(&object, r.target)))
        .collect();
    assert_eq!(
        pointers,
        [(0, RelocKind::Abs64, "l_.str".to_string()), (8, RelocKind::Abs64, "l_.str.1".to_string())]
    );
}

#[test]
fn wrong_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("x.c");
    std::fs::write(&c, "int f(void) { return 1; }\n").unwrap();
    let object = dir.path().join("x.o");
    let status = Command::new("clang-19")
        .args(["--target=x86_64-apple-macos13", "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap();
    assert!(status.success());
    let err = ingest(&object).unwrap_err();
    assert_eq!(err, InputError::WrongArch { path: object.clone(), arch: "x86_64".into() });
    assert!(err.to_string().contains("x86_64") && err.to_string().contains("arm64"), "{err}");
}

#[test]
fn thread_locals_are_refused_with_the_section_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = compile(dir.path(), "tls", "_Thread_local int t; int get(void) { return t; }\n", &["-O1"]);
    let err = ingest(&path).unwrap_err().to_string();
    assert!(err.contains("tls.o") && err.contains("thread-local"), "{err}");
}

#[test]
fn corrupt_and_truncated_objects_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(compile(dir.path(), "prog", PROGRAM, &["-O1"])).unwrap();
    let path = Path::new("prog.o");
    // Every truncation point and a sweep of single-byte corruptions: never a panic.
    for len in (0..bytes.len()).step_by(7) {
        let _ = parse_object(path, &bytes[..len]);
    }
    for at in 0..bytes.len().min(4096) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= flip;
            let _ = parse_object(path, &corrupt);
        }
    }
    assert!(matches!(parse_object(path, &bytes[..16]), Err(InputError::Malformed { .. })));
    assert!(matches!(parse_object(path, b"not an object"), Err(InputError::Malformed { .. })));
}

const LIBSYSTEM_TBD: &str = "--- !tapi-tbd\ntbd-version: 4\ntargets: [ arm64-macos ]\n\
install-name: '/usr/lib/libSystem.B.dylib'\nexports:\n  - targets: [ arm64-macos ]\n    symbols: [ _puts, _exit ]\n...\n";

fn objects(dir: &Path, sources: &[(&str, &str)]) -> Vec<InputObject> {
    sources.iter().map(|(name, source)| ingest(&compile(dir, name, source, &["-O1"])).unwrap()).collect()
}

#[test]
fn globals_resolve_across_objects_and_to_imports() {
    let dir = tempfile::tempdir().unwrap();
    let objs = objects(
        dir.path(),
        &[
            (
                "main",
                "int puts(const char *); int value(void); int shared = 3;\nint main(void) { puts(\"hi\"); return value() + shared; }\n",
            ),
            ("lib", "extern int shared; __attribute__((weak)) int value(void) { return shared; }\n"),
            ("strong", "int value(void) { return 7; }\n"),
        ],
    );
    let libsystem = parse_tbd(Path::new("libSystem.tbd"), LIBSYSTEM_TBD).unwrap();
    let globals = resolve(&objs, &[libsystem]).unwrap();
    let value = globals.resolution(globals.id("_value").unwrap());
    assert!(
        matches!(value, Resolution::Defined { object: 2, weak: false, .. }),
        "the strong definition wins: {value:?}"
    );
    assert!(matches!(
        globals.resolution(globals.id("_shared").unwrap()),
        Resolution::Defined { object: 0, .. }
    ));
    assert_eq!(globals.resolution(globals.id("_puts").unwrap()), Resolution::Import { dylib_ordinal: 1 });
}

#[test]
fn two_strong_definitions_are_a_duplicate_naming_both_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objs = objects(
        dir.path(),
        &[("a", "int twice(void) { return 1; }\n"), ("b", "int twice(void) { return 2; }\n")],
    );
    let err = resolve(&objs, &[]).unwrap_err();
    assert!(matches!(&err, ResolveError::Duplicate { symbol, .. } if symbol == "_twice"), "{err}");
    let message = err.to_string();
    assert!(message.contains("a.o") && message.contains("b.o"), "{message}");
}

#[test]
fn an_undefined_symbol_names_every_referencing_atom_and_object() {
    let dir = tempfile::tempdir().unwrap();
    let objs = objects(
        dir.path(),
        &[
            (
                "main",
                "int missing(int); int helper(int x) { return missing(x) + 1; }\nint main(void) { return missing(2); }\n",
            ),
            ("other", "extern int gone; int peek(void) { return gone; }\n"),
        ],
    );
    let err = resolve(&objs, &[]).unwrap_err();
    let ResolveError::Undefined(list) = &err else { panic!("{err}") };
    let names: Vec<&str> = list.iter().map(|u| u.symbol.as_str()).collect();
    assert_eq!(names, ["_gone", "_missing"]);
    let missing: Vec<&str> = list[1].referenced_from.iter().map(|(_, atom)| atom.as_str()).collect();
    assert_eq!(missing, ["_helper", "_main"]);
    let message = err.to_string();
    assert!(message.contains("undefined symbol _missing\n  referenced by _helper in "), "{message}");
    assert!(message.contains("other.o"), "{message}");
}

#[path = "got_linker/broken.rs"]
mod broken;
#[path = "got_linker/corpus.rs"]
mod corpus;
#[path = "got_linker/incremental.rs"]
mod incremental;
#[path = "got_linker/support.rs"]
mod support;
