//! Every corpus program (`tests/programs/`) at every optimisation level: hcr links it, llvm-objdump reads the
//! result without a warning, the relocation verifier finds every place reaching its target, and ld64.lld-19
//! links the same objects (the differential run in darwin-sim compares behaviour).

use std::path::PathBuf;

use crate::support::{LEVELS, compile_program, hcr_link, lld_link, objdump, parse_all, root};

fn programs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("tests/programs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

#[test]
fn the_corpus_has_at_least_fifteen_programs() {
    assert!(programs().len() >= 15, "{:?}", programs());
}

#[test]
fn every_corpus_program_links_verifies_and_reads_back_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for program in programs() {
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        for level in LEVELS {
            let what = format!("{name} {level}");
            let work = dir.path().join(format!("{name}{level}"));
            std::fs::create_dir_all(&work).unwrap();
            let objects = compile_program(&program, &work, level);
            let (linker, _) = hcr_link(&parse_all(&objects));
            let exe = work.join("prog");
            std::fs::write(&exe, linker.file()).unwrap();
            if let Err(e) = objdump(&exe) {
                failures.push(format!("{what}: llvm-objdump: {e}"));
            }
            match linker.verify() {
                Ok(v) if v.relocations > 0 && v.stubs > 0 && v.cells > 0 => {}
                Ok(v) => failures.push(format!("{what}: the verifier checked too little: {v:?}")),
                Err(errors) => failures.push(format!("{what}: {}", errors.join("\n  "))),
            }
            if let Err(e) = lld_link(&objects, &work.join("prog.lld"), false) {
                failures.push(format!("{what}: ld64.lld-19 -no_fixup_chains: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
