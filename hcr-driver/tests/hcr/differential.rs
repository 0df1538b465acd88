//! The differential run: every corpus program (`tests/programs/`), at every optimisation level, linked by hcr
//! and by ld64.lld-19 (chained fixups and `-no_fixup_chains`), run in darwin-sim at a random slide and with
//! ASLR off: stdout, stderr and exit status must be identical across all of them, and equal to what the
//! program's `expected.*` files say (recorded from the same sources built natively).

use std::path::{Path, PathBuf};
use std::process::Command;

use darwin_sim::{RunOptions, run_exe};
use got_linker::input::parse_object;
use got_linker::tbd::parse_tbd;
use got_linker::{Linker, NothingLive};
use macho_layout::LayoutConfig;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn compile(source: &Path, object: &Path, level: &str) {
    let out = Command::new("clang-19")
        .args(darwin_sim::sdk::clang_args())
        .args([
            "-fno-asynchronous-unwind-tables",
            "-mllvm",
            "-aarch64-enable-global-merge=false",
            "-c",
            level,
        ])
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .expect("clang-19 (cargo xtask setup)");
    assert!(out.status.success(), "{}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
}

fn lld(objects: &[PathBuf], out: &Path, chained: bool) {
    let mut cmd = Command::new("ld64.lld-19");
    cmd.args(darwin_sim::sdk::ld_args());
    if !chained {
        cmd.arg("-no_fixup_chains");
    }
    let result = cmd.args(objects).arg("-o").arg(out).output().expect("ld64.lld-19 (cargo xtask setup)");
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
}

fn hcr_link(objects: &[PathBuf], out: &Path) {
    let tbd = darwin_sim::sdk::path().join("usr/lib/libSystem.tbd");
    let libsystem = parse_tbd(&tbd, &std::fs::read_to_string(&tbd).unwrap()).unwrap();
    let inputs: Vec<_> =
        objects.iter().map(|p| parse_object(p, &std::fs::read(p).unwrap()).unwrap()).collect();
    let mut linker = Linker::new("prog", None, LayoutConfig::default(), vec![libsystem]);
    linker.update(&inputs, &NothingLive).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    std::fs::write(out, linker.file()).unwrap();
}

/// `(stdout, stderr, exit status)` as text.
type Behaviour = (String, String, String);

fn expected(program: &Path) -> Behaviour {
    let read = |name: &str| std::fs::read_to_string(program.join(name)).unwrap();
    (read("expected.stdout"), read("expected.stderr"), read("expected.status").trim().to_string())
}

#[test]
fn every_corpus_program_behaves_the_same_linked_by_hcr_and_by_ld64_lld_at_any_slide() {
    let mut programs: Vec<PathBuf> = std::fs::read_dir(root().join("tests/programs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    programs.sort();
    assert!(programs.len() >= 15);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut runs = 0;
    for program in &programs {
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        let want = expected(program);
        for level in ["-O0", "-O1", "-O2", "-O3"] {
            let work = dir.path().join(format!("{name}{level}"));
            std::fs::create_dir_all(&work).unwrap();
            let mut sources: Vec<PathBuf> = std::fs::read_dir(program)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "c"))
                .collect();
            sources.sort();
            let objects: Vec<PathBuf> = sources
                .iter()
                .map(|s| {
                    let o = work.join(s.file_name().unwrap()).with_extension("o");
                    compile(s, &o, level);
                    o
                })
                .collect();
            let exes = [
                ("hcr", work.join("prog.hcr")),
                ("lld", work.join("prog.lld")),
                ("lld-opcodes", work.join("prog.lld-op")),
            ];
            hcr_link(&objects, &exes[0].1);
            lld(&objects, &exes[1].1, true);
            lld(&objects, &exes[2].1, false);
            for (linker, exe) in &exes {
                for aslr in [true, false] {
                    let options = RunOptions {
                        aslr,
                        timeout: Some(std::time::Duration::from_secs(20)),
                        ..RunOptions::default()
                    };
                    let what = format!(
                        "{name} {level} linked by {linker}, ASLR {}",
                        if aslr { "on" } else { "off" }
                    );
                    runs += 1;
                    match run_exe(exe, &[], &options) {
                        Ok(outcome) => {
                            let got =
                                (outcome.stdout_text(), outcome.stderr_text(), exit_code(&outcome.status));
                            if got != want {
                                failures.push(format!("{what}: got {got:?}, expected {want:?}"));
                            }
                            if aslr && outcome.slide == 0 {
                                failures.push(format!("{what}: ran without a slide"));
                            }
                            if !aslr && outcome.slide != 0 {
                                failures.push(format!("{what}: slid by {:#x} with ASLR off", outcome.slide));
                            }
                        }
                        Err(e) => failures.push(format!("{what}: {e}")),
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {runs} runs differ:\n{}", failures.len(), failures.join("\n"));
}

fn exit_code(status: &darwin_sim::ExitStatus) -> String {
    match status {
        darwin_sim::ExitStatus::Exited(code) => code.to_string(),
        other => format!("{other:?}"),
    }
}
