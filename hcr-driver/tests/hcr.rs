//! The `hcr` binary, run as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn hcr(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hcr")).current_dir(dir).args(args).output().expect("hcr runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "hcr failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const MAIN: &str =
    "#include <stdio.h>\nint twice(int);\nint main(void) { printf(\"%d\\n\", twice(21)); return 0; }\n";
const UTIL: &str = "int twice(int x) { return x * 2; }\n";

#[test]
fn build_is_incremental_across_runs_and_the_output_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    let exe = dir.path().join("prog");

    let first = stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    assert!(first.contains("2 compiled, full link"), "{first}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&exe).unwrap());

    let again = stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    assert!(again.contains("0 compiled, incremental link"), "{again}");
    assert!(again.contains("0 bytes in 0 file ranges"), "{again}");

    std::fs::write(dir.path().join("util.c"), UTIL.replace("x * 2", "x * 2 + 1")).unwrap();
    let edited = stdout(&hcr(dir.path(), &["build", "-v", "-o", "prog", "main.c", "util.c"]));
    assert!(edited.contains("1 compiled, incremental link"), "{edited}");
    assert!(edited.contains("changed in place   _twice"), "{edited}");
    // A new inode each time the file changes (the kernel caches code-signing state per vnode).
    assert_ne!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&exe).unwrap()), inode);
    let dump = Command::new("llvm-objdump-19").args(["--macho", "--all-headers"]).arg(&exe).output().unwrap();
    assert!(dump.status.success() && dump.stderr.is_empty(), "{}", String::from_utf8_lossy(&dump.stderr));
}

#[test]
fn an_executable_changed_behind_hcrs_back_gets_a_full_link() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    std::fs::write(dir.path().join("prog"), b"not the file hcr wrote").unwrap();
    let out = stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    assert!(out.contains("full link"), "{out}");
}

#[test]
fn a_compile_error_names_the_file_and_leaves_the_executable_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let before = std::fs::read(dir.path().join("prog")).unwrap();
    std::fs::write(dir.path().join("util.c"), "int twice(int x) { return x * ; }\n").unwrap();
    let out = hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("util.c: compile failed"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("prog")).unwrap(), before);
    // Fixing the error builds incrementally from the state kept before it.
    std::fs::write(dir.path().join("util.c"), UTIL.replace("x * 2", "x * 4")).unwrap();
    let fixed = stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    assert!(fixed.contains("incremental link") && fixed.contains("1 changed in place"), "{fixed}");
}

#[test]
fn an_undefined_symbol_names_the_function_and_leaves_the_executable_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let before = std::fs::read(dir.path().join("prog")).unwrap();
    std::fs::write(dir.path().join("util.c"), "int gone(int);\nint twice(int x) { return gone(x); }\n")
        .unwrap();
    let out = hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("undefined symbol _gone") && err.contains("referenced by _twice"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("prog")).unwrap(), before);
}

#[test]
fn a_corrupt_object_is_named_and_the_executable_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let before = std::fs::read(dir.path().join("prog")).unwrap();
    // An object truncated in the middle of its load commands, given instead of util.c.
    std::fs::write(dir.path().join("util.o"), &before[..100]).unwrap();
    let out = hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.o"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("util.o"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("prog")).unwrap(), before);
}

#[test]
fn layout_shows_the_map_and_what_the_last_update_moved() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    // `after` follows twice in memory, so twice cannot grow into free space behind it.
    let after = "int after(int x) { return x - 1; }\n";
    std::fs::write(dir.path().join("util.c"), format!("{UTIL}{after}")).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let map = stdout(&hcr(dir.path(), &["layout", "prog"]));
    assert!(map.contains("__STUBS") && map.contains("__DATA_CONST"), "{map}");
    assert!(map.lines().any(|l| l.ends_with(" _twice$stub")), "{map}");
    // Grow twice past its padding: it moves, and only its cell follows.
    let grown = "int twice(int x) { int r = x; for (int i = 0; i < x; i++) { r = r * 3 + i; r ^= r >> 3; r += i * i; } \
                 return r * 2 + (r >> 7) - (r & 12) + (r | 5); }\n";
    std::fs::write(dir.path().join("util.c"), format!("{grown}{after}")).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let html = dir.path().join("diff.html");
    let diff = stdout(&hcr(
        dir.path(),
        &["layout", "prog", "--diff", "prog.hcr/previous", "--html", html.to_str().unwrap()],
    ));
    assert!(diff.lines().any(|l| l.starts_with("M ") && l.trim_end().ends_with(" _twice")), "{diff}");
    assert!(diff.lines().any(|l| l.starts_with("C ") && l.contains("_twice$cell")), "{diff}");
    assert!(!diff.lines().any(|l| l.contains("_main") && !l.starts_with("  ")), "{diff}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("class=\"moved\""), "{page}");
}

#[test]
fn verify_accepts_what_hcr_writes_after_updates_and_names_a_changed_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    std::fs::write(dir.path().join("util.c"), UTIL.replace("x * 2", "x * 2 + 1")).unwrap();
    stdout(&hcr(dir.path(), &["build", "-o", "prog", "main.c", "util.c"]));
    let ok = stdout(&hcr(dir.path(), &["verify", "prog"]));
    assert!(ok.starts_with("prog: ") && ok.contains("signature of \"prog\" valid"), "{ok}");

    // One byte of code changed behind hcr's back: the page is named and the exit status says so.
    let mut file = std::fs::read(dir.path().join("prog")).unwrap();
    let map = macho_layout::read::read_map(&file).unwrap();
    let twice = map.symbols.iter().find(|s| s.name == "_twice").unwrap();
    let at = twice.fileoff.unwrap() as usize;
    file[at] ^= 0x10;
    std::fs::write(dir.path().join("prog"), &file).unwrap();
    let bad = hcr(dir.path(), &["verify", "prog"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    let page = at / 4096;
    assert!(
        stderr.contains("prog: the code signature") && stderr.contains(&format!("page {page} ")),
        "{stderr}"
    );
}

#[cfg(feature = "sim")]
#[path = "hcr/differential.rs"]
mod differential;

#[cfg(feature = "sim")]
#[path = "hcr/live.rs"]
mod live;

#[cfg(feature = "sim")]
#[path = "hcr/generated.rs"]
mod generated;

#[cfg(feature = "sim")]
#[path = "hcr/hooked.rs"]
mod hooked;

#[cfg(feature = "sim")]
#[path = "hcr/faults.rs"]
mod faults;

#[cfg(feature = "sim")]
#[path = "hcr/threads.rs"]
mod threads;

#[test]
fn a_session_reads_and_parses_only_the_objects_that_changed() {
    use hcr_driver::build::{BuildOptions, Project, Sdk};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("util.c"), UTIL).unwrap();
    let options = BuildOptions {
        out: dir.path().join("prog"),
        inputs: vec![dir.path().join("main.c"), dir.path().join("util.c")],
        flags: vec!["-O0".into()],
        sdk: Sdk::locate(None).unwrap(),
        cc: None,
    };
    let mut project = Project::open(options).unwrap();
    assert_eq!(project.compile().unwrap().parsed, 2);
    assert_eq!(project.compile().unwrap().parsed, 0);
    std::fs::write(dir.path().join("util.c"), UTIL.replace("x * 2", "x * 5")).unwrap();
    let objects = project.compile().unwrap();
    assert_eq!((objects.compiled.len(), objects.parsed), (1, 1));
    let linked = project.link(objects, &got_linker::NothingLive).unwrap();
    assert!(linked.patch.summary.added.contains(&"_twice".to_string()), "{}", linked.patch.describe());
}
