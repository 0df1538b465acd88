//! One-function incremental updates on generated programs of 100, 1,000 and 10,000 functions: the linker side
//! of a hot update (diff, place, relocate, publish, render and re-sign), with the edited object already parsed.
//!
//! Run with `cargo bench -p got-linker`. Needs clang-19 and the sim SDK, like the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use got_linker::input::{InputObject, parse_object};
use got_linker::tbd::parse_tbd;
use got_linker::{Linker, NothingLive};
use macho_layout::LayoutConfig;

const PER_UNIT: usize = 100;

fn sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim-sdk")
}

/// Unit `u` of a program of `units` units: each function mixes its argument with a constant, a global of its
/// unit and a call to a function of the previous unit, the way real code calls across files.
fn unit_source(u: usize, units: usize, bump: i32) -> String {
    let mut s = String::from("int printf(const char *, ...);\n");
    let prev = (u + units - 1) % units;
    for f in 0..PER_UNIT {
        s.push_str(&format!("int f{prev}_{f}(int);\n"));
    }
    s.push_str(&format!("int g{u}[4] = {{{u}, 1, 2, 3}};\n"));
    for f in 0..PER_UNIT {
        let k = if f == 0 { 7 + bump } else { 7 };
        s.push_str(&format!(
            "int f{u}_{f}(int x) {{ if (x <= 0) return g{u}[x & 3]; return (x * {k} + {f}) ^ f{prev}_{f}(x - 1); }}\n"
        ));
    }
    if u == 0 {
        s.push_str("int main(void) { printf(\"%d\\n\", f0_0(3)); return 0; }\n");
    }
    s
}

fn compile(dir: &Path, name: &str, source: &str) -> InputObject {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&c, source).unwrap();
    let status = Command::new("clang-19")
        .args(["--target=arm64-apple-macos13", "-isysroot"])
        .arg(sdk())
        .args(["-O1", "-fno-asynchronous-unwind-tables", "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .status()
        .expect("clang-19 (cargo xtask setup)");
    assert!(status.success());
    // Both versions of the edited unit must have the same path: that is the object's identity.
    let path = dir.join(format!("{}.o", name.trim_end_matches("-edited")));
    parse_object(&path, &std::fs::read(&o).unwrap()).unwrap()
}

fn program(functions: usize) -> (tempfile::TempDir, Vec<InputObject>, InputObject) {
    let dir = tempfile::tempdir().unwrap();
    let units = functions / PER_UNIT;
    let objects: Vec<InputObject> =
        (0..units).map(|u| compile(dir.path(), &format!("u{u}"), &unit_source(u, units, 0))).collect();
    let edited = compile(dir.path(), &format!("u{}-edited", units / 2), &unit_source(units / 2, units, 1));
    (dir, objects, edited)
}

fn one_function_update(c: &mut Criterion) {
    let tbd = sdk().join("usr/lib/libSystem.tbd");
    let libsystem = parse_tbd(&tbd, &std::fs::read_to_string(&tbd).unwrap()).unwrap();
    let mut group = c.benchmark_group("one_function_update");
    group.sample_size(20);
    for functions in [100, 1_000, 10_000] {
        let (_dir, original, edited) = program(functions);
        let mut changed = original.clone();
        let middle = changed.len() / 2;
        changed[middle] = edited;
        let mut linker = Linker::new("bench", None, LayoutConfig::default(), vec![libsystem.clone()]);
        linker.update(&original, &NothingLive).unwrap();
        let mut flip = false;
        group.bench_with_input(BenchmarkId::from_parameter(functions), &functions, |b, _| {
            b.iter(|| {
                flip = !flip;
                let objects = if flip { &changed } else { &original };
                let patch = linker.update(objects, &NothingLive).unwrap();
                assert_eq!(patch.summary.changed_in_place.len() + patch.summary.moved.len(), 1);
                patch
            });
        });
    }
    group.finish();
}

criterion_group!(benches, one_function_update);
criterion_main!(benches);
