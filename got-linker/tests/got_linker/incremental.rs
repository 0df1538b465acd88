//! Updates: the seed scenario, liveness, state rules, errors that change nothing, and random edit sequences that
//! must end in an image equivalent to a fresh link.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use got_linker::input::{InputObject, parse_object};
use got_linker::{LinkError, Linker, Liveness, NothingLive, Patch, WriteKind};
use macho_layout::LayoutConfig;
use proptest::prelude::*;

use crate::support::{compile_c, libsystem};

/// A program being edited: its C units, compiled on demand (only the ones whose text changed).
pub struct Workspace {
    dir: tempfile::TempDir,
    units: BTreeMap<String, (String, InputObject)>,
    level: &'static str,
}

impl Workspace {
    pub fn new(level: &'static str) -> Workspace {
        Workspace { dir: tempfile::tempdir().unwrap(), units: BTreeMap::new(), level }
    }

    /// Sets the units' sources (units not listed are removed) and returns the objects.
    pub fn objects(&mut self, sources: &[(&str, String)]) -> Vec<InputObject> {
        self.units.retain(|name, _| sources.iter().any(|(n, _)| n == name));
        for (name, source) in sources {
            if self.units.get(*name).is_some_and(|(s, _)| s == source) {
                continue;
            }
            let c = self.dir.path().join(format!("{name}.c"));
            let o = self.dir.path().join(format!("{name}.o"));
            std::fs::write(&c, source).unwrap();
            compile_c(&c, &o, self.level);
            let object = parse_object(&o, &std::fs::read(&o).unwrap()).unwrap();
            self.units.insert(name.to_string(), (source.clone(), object));
        }
        self.units.values().map(|(_, o)| o.clone()).collect()
    }
}

pub fn new_linker() -> Linker {
    Linker::new("prog", None, LayoutConfig::default(), vec![libsystem()])
}

fn written(patch: &Patch) -> Vec<String> {
    patch.writes.iter().map(|w| w.what.clone()).collect()
}

const SEED_MAIN: &str = r#"#include <assert.h>
#include <stdio.h>
#include <unistd.h>

int bar(void);
void addToBar(int *acc);

int main(void) {
    int acc = 0;
    for (int i = 0; i < 1000; i++) {
        addToBar(&acc);
        assert(bar() != 12);
        printf("acc=%d bar=%d\n", acc, bar());
        usleep(100000);
    }
    return 0;
}
"#;

const SEED_BAR: &str = r#"int bar(void) { return 5; }

void addToBar(int *acc) { *acc += bar(); }
"#;

const SEED_BAR_GROWN: &str = r#"static volatile int sink;

int bar(void) {
    int r = 0;
    for (int i = 0; i < 7; i++) { sink = i; r += sink; }
    sink = r * 3; sink = sink + 1; sink = sink ^ 5; sink = sink - 2;
    sink = sink * 7; sink = sink / 3; sink = sink + 11; sink = sink % 97;
    return r - 16;
}

void addToBar(int *acc) { *acc += bar(); }
"#;

#[test]
fn seed_scenario_bar_grows_and_moves_and_only_its_cell_changes() {
    // -O0, as `hcr run` builds by default (at -O1 clang inlines bar into addToBar).
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let add_to_bar = linker.atom_by_name("_addToBar").map(|(a, b)| (a, b.to_vec())).unwrap();

    let patch = linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR_GROWN.into())]), &NothingLive)
        .unwrap();
    insta::assert_snapshot!(patch.describe());
    assert_eq!(patch.summary.moved.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["_bar"]);
    assert_eq!(patch.summary.cells, ["_bar$cell"]);
    assert!(!written(&patch).iter().any(|w| w.contains("addToBar")), "{:?}", written(&patch));
    assert_eq!(linker.atom_by_name("_addToBar").map(|(a, b)| (a, b.to_vec())).unwrap(), add_to_bar);
    // Cells are stored last, and the only cell store is bar's.
    let cell_writes: Vec<_> = patch.writes.iter().filter(|w| w.kind == WriteKind::Cell).collect();
    assert_eq!(cell_writes.len(), 1);
    assert_eq!(patch.writes.last().unwrap().kind, WriteKind::Cell);
    linker.verify().unwrap();
}

#[test]
fn the_verifier_catches_a_wrong_branch_a_wrong_cell_and_a_stale_byte() {
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let good = linker.verify().unwrap();
    assert!(good.relocations >= 5 && good.stubs >= 4 && good.cells >= 4, "{good:?}");
    let text_off = |addr: u64| (addr - 0x1_0000_0000) as usize; // __TEXT is mapped from file offset 0
    let (add_to_bar, _) = linker.atom_by_name("_addToBar").unwrap();
    let (main, main_bytes) = linker.atom_by_name("_main").map(|(a, b)| (a, b.to_vec())).unwrap();
    // Find main's first BL and point it one instruction further.
    let bl = (0..main_bytes.len()).step_by(4).find(|&i| main_bytes[i + 3] & 0xfc == 0x94).unwrap();
    let mut file = linker.file().to_vec();
    file[text_off(main) + bl] = file[text_off(main) + bl].wrapping_add(1);
    let errors = linker.verify_file(&file).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("_main+") && e.contains("BL/B")), "{errors:?}");
    // A byte of a body that no relocation touches.
    let mut file = linker.file().to_vec();
    file[text_off(add_to_bar)] ^= 0x40;
    let errors = linker.verify_file(&file).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("_addToBar+0x0") && e.contains("differs")), "{errors:?}");
    // A cell that does not hold its body's address.
    let map = linker.symbol_map();
    let (_, _, cell) = map.stubs.iter().find(|(n, _, _)| n == "_bar").unwrap().clone();
    let cell_off = file_offset_of(linker.file(), cell);
    let mut file = linker.file().to_vec();
    file[cell_off] ^= 0x10;
    let errors = linker.verify_file(&file).unwrap_err();
    assert!(errors.iter().any(|e| e.starts_with("_bar$cell")), "{errors:?}");
}

/// The file offset of a VM address, from the segment load commands.
fn file_offset_of(file: &[u8], addr: u64) -> usize {
    use object::read::macho::{MachHeader as _, Segment as _};
    let header = object::macho::MachHeader64::<object::LittleEndian>::parse(file, 0).unwrap();
    let mut commands = header.load_commands(object::LittleEndian, file, 0).unwrap();
    while let Some(command) = commands.next().unwrap() {
        if let Some((segment, _)) = command.segment_64().unwrap() {
            let (vmaddr, vmsize) =
                (segment.vmaddr(object::LittleEndian), segment.vmsize(object::LittleEndian));
            if (vmaddr..vmaddr + vmsize).contains(&addr) {
                return (segment.fileoff(object::LittleEndian) + addr - vmaddr) as usize;
            }
        }
    }
    panic!("{addr:#x} is in no segment");
}

/// Liveness given as explicit ranges of link-time addresses.
struct LiveAt(Vec<u64>);

impl Liveness for LiveAt {
    fn is_live(&self, range: Range<u64>) -> bool {
        self.0.iter().any(|a| range.contains(a))
    }
}

#[test]
fn a_function_a_thread_is_in_moves_instead_of_being_overwritten_and_its_old_body_is_freed_later() {
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let (old_bar, old_bytes) = linker.atom_by_name("_bar").map(|(a, b)| (a, b.to_vec())).unwrap();

    // A thread returns into bar: a small edit that would fit in place must move.
    let edited = SEED_BAR.replace("return 5", "return 6");
    let patch = linker
        .update(
            &ws.objects(&[("main", SEED_MAIN.into()), ("bar", edited.clone())]),
            &LiveAt(vec![old_bar + 4]),
        )
        .unwrap();
    let moved = &patch.summary.moved;
    assert_eq!(moved.len(), 1, "{}", patch.describe());
    assert_eq!(moved[0].reason, got_linker::patch::MoveReason::Live);
    assert!(
        patch.writes.iter().all(|w| w.kind == WriteKind::Cell
            || !(w.addr..w.addr + w.bytes.len() as u64).contains(&(old_bar + 4)))
    );
    // The old bytes are still in the file where the thread is.
    let file_has_old = linker.file().windows(old_bytes.len()).any(|w| w == old_bytes.as_slice());
    assert!(file_has_old);

    // Next update, nothing live: the retired body is freed and its space is reused by the next function that
    // moves there.
    let again = edited.replace("return 6", "return 7");
    let patch =
        linker.update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", again)]), &NothingLive).unwrap();
    assert_eq!(patch.summary.changed_in_place, ["_bar"], "{}", patch.describe());
    linker.verify().unwrap();
}

#[test]
fn a_removed_function_keeps_its_body_and_cell_so_a_stale_call_still_runs_it() {
    let main = |table: &str| {
        format!(
            "int one(void);\nint two(void);\nint (*table[])(void) = {{{table}}};\n\
             int main(void) {{ return table[0]() + table[1](); }}\n"
        )
    };
    let fns = "int one(void) { return 1; }\nint two(void) { return 2; }\n";
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker.update(&ws.objects(&[("main", main("one, two")), ("fns", fns.into())]), &NothingLive).unwrap();
    let (two, two_bytes) = linker.atom_by_name("_two").map(|(a, b)| (a, b.to_vec())).unwrap();
    let cell = linker.symbol_map().stubs.iter().find(|(name, _, _)| name == "_two").map(|s| s.2).unwrap();

    // `two` goes away, with the table's pointer to it. A stale copy of that pointer (or old code on a stack)
    // may still call it: its cell keeps leading to its body.
    let without = "int one(void) { return 1; }\n";
    let patch = linker
        .update(&ws.objects(&[("main", main("one, one")), ("fns", without.into())]), &NothingLive)
        .unwrap();
    assert_eq!(patch.summary.removed, ["_two"], "{}", patch.describe());
    // Then more code arrives, on updates where no thread is anywhere: the body is never handed out again.
    let mut more = String::from(without);
    for i in 0..40 {
        // Functions of `two`'s size (which would fit its space exactly) and larger ones.
        more += &format!("int small{i}(void) {{ return {i}; }}\n");
        more += &format!(
            "int big{i}(int x) {{ int r = x; for (int k = 0; k < x; k++) r = r * {i} + k; return r; }}\n"
        );
        linker
            .update(&ws.objects(&[("main", main("one, one")), ("fns", more.clone())]), &NothingLive)
            .unwrap();
        for name in [format!("_small{i}"), format!("_big{i}")] {
            let (addr, bytes) = linker.atom_by_name(&name).unwrap();
            let clear = addr + bytes.len() as u64 <= two || addr >= two + two_bytes.len() as u64;
            assert!(clear, "{name} at {addr:#x} reused the space of two at {two:#x}");
        }
    }
    let file = linker.file();
    let at = file_offset_of(file, two);
    assert_eq!(&file[at..at + two_bytes.len()], &two_bytes[..], "two's body is intact");
    let at = file_offset_of(file, cell);
    assert_eq!(u64::from_le_bytes(file[at..at + 8].try_into().unwrap()), two, "two's cell leads to its body");
}

#[test]
fn globals_keep_state_unless_resized_and_referrers_follow_a_resized_global() {
    let mut ws = Workspace::new("-O1");
    let mut linker = new_linker();
    let main = "#include <stdio.h>\nextern int g[4];\nint *gp = &g[1];\nint main(void) { printf(\"%d %d\\n\", g[0], *gp); return 0; }\n";
    let g = |init: &str, n: usize| format!("int g[{n}] = {{{init}}};\nint get(int i) {{ return g[i]; }}\n");
    linker.update(&ws.objects(&[("main", main.into()), ("g", g("1, 2", 4))]), &NothingLive).unwrap();
    let (g_addr, _) = linker.atom_by_name("_g").unwrap();

    // A new initializer: the running value is kept (nothing is written to g), the file gets the new one.
    let patch =
        linker.update(&ws.objects(&[("main", main.into()), ("g", g("3, 4", 4))]), &NothingLive).unwrap();
    assert_eq!(patch.summary.globals_kept, ["_g"], "{}", patch.describe());
    assert!(patch.writes.iter().all(|w| !w.what.starts_with("_g")), "{}", patch.describe());
    assert_eq!(linker.atom_by_name("_g").unwrap().0, g_addr);
    assert_eq!(&linker.atom_by_name("_g").unwrap().1[..8], &[3, 0, 0, 0, 4, 0, 0, 0]);

    // A new size: fresh storage, initialised, and gp (a pointer into g) and get() follow it.
    let patch =
        linker.update(&ws.objects(&[("main", main.into()), ("g", g("5, 6", 8))]), &NothingLive).unwrap();
    assert_eq!(patch.summary.globals_reset, ["_g"], "{}", patch.describe());
    let (new_g, bytes) = linker.atom_by_name("_g").unwrap();
    assert_ne!(new_g, g_addr);
    assert_eq!(&bytes[..8], &[5, 0, 0, 0, 6, 0, 0, 0]);
    assert!(patch.writes.iter().any(|w| w.what == "_g" && w.addr == new_g), "{}", patch.describe());
    let gp_fix = patch.writes.iter().find(|w| w.what.starts_with("_gp")).expect("gp is rewritten");
    assert_eq!(u64::from_le_bytes(gp_fix.bytes[..8].try_into().unwrap()), new_g + 4);
    assert_eq!(gp_fix.pointers, [0]);
    assert!(patch.summary.relinked.contains(&"_get".to_string()), "{}", patch.describe());
    linker.verify().unwrap();
}

#[test]
fn a_new_library_import_is_listed_for_the_running_process() {
    let mut ws = Workspace::new("-O1");
    let mut linker = new_linker();
    let v1 = "int main(void) { return 0; }\n";
    let v2 = "#include <stdio.h>\nint main(void) { return puts(\"new\"); }\n";
    linker.update(&ws.objects(&[("main", v1.into())]), &NothingLive).unwrap();
    let patch = linker.update(&ws.objects(&[("main", v2.into())]), &NothingLive).unwrap();
    assert_eq!(patch.new_imports.len(), 1, "{}", patch.describe());
    assert_eq!(patch.new_imports[0].symbol, "_puts");
    assert_eq!(patch.new_imports[0].dylib, "/usr/lib/libSystem.B.dylib");
    linker.verify().unwrap();
}

/// An update that fails leaves the linker exactly as it was: same file, and the next good update works.
fn assert_rejected_without_change(linker: &mut Linker, objects: &[InputObject]) -> LinkError {
    let before = linker.file().to_vec();
    let updates = linker.updates();
    let Err(err) = linker.update(objects, &NothingLive) else { panic!("the update must fail") };
    assert_eq!(linker.file(), before.as_slice());
    assert_eq!(linker.updates(), updates);
    err
}

#[test]
fn an_undefined_symbol_names_the_referencing_atom_and_changes_nothing() {
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let broken = "int missing(int);\nint bar(void) { return missing(5); }\nvoid addToBar(int *acc) { *acc += bar(); }\n";
    let err = assert_rejected_without_change(
        &mut linker,
        &ws.objects(&[("main", SEED_MAIN.into()), ("bar", broken.into())]),
    );
    let message = err.to_string();
    assert!(message.contains("undefined symbol _missing"), "{message}");
    assert!(message.contains("referenced by _bar in") && message.contains("bar.o"), "{message}");
    let patch = linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR_GROWN.into())]), &NothingLive)
        .unwrap();
    assert_eq!(patch.summary.moved.len(), 1);
    linker.verify().unwrap();
}

#[test]
fn a_duplicate_definition_names_both_objects_and_changes_nothing() {
    let mut ws = Workspace::new("-O1");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let err = assert_rejected_without_change(
        &mut linker,
        &ws.objects(&[
            ("main", SEED_MAIN.into()),
            ("bar", SEED_BAR.into()),
            ("dup", "int bar(void) { return 1; }\n".into()),
        ]),
    );
    let message = err.to_string();
    assert!(message.contains("duplicate symbol _bar"), "{message}");
    assert!(message.contains("bar.o") && message.contains("dup.o"), "{message}");
}

#[test]
fn a_program_without_main_is_an_error() {
    let mut ws = Workspace::new("-O1");
    let mut linker = new_linker();
    let err = linker.update(&ws.objects(&[("lib", "int f(void) { return 1; }\n".into())]), &NothingLive);
    assert!(matches!(err, Err(LinkError::NoMain)), "{err:?}");
}

#[test]
fn a_branch_out_of_range_names_the_symbol_and_changes_nothing() {
    let mut ws = Workspace::new("-O0");
    // A text reserve larger than a branch reaches: stubs land 200 MiB after the first function.
    let config = LayoutConfig { text: 200 << 20, ..LayoutConfig::default() };
    let mut linker = Linker::new("prog", None, config, vec![libsystem()]);
    let source = "int f(void);\nint main(void) { return f(); }\nint f(void) { return 2; }\n";
    let Err(err) = linker.update(&ws.objects(&[("main", source.into())]), &NothingLive) else {
        panic!("the call cannot reach the stub");
    };
    let message = err.to_string();
    assert!(message.contains("BRANCH26 to _f is out of range"), "{message}");
    assert!(message.contains("_main") && message.contains("main.o"), "{message}");
    assert!(linker.file().is_empty());
}

#[test]
fn an_unchanged_rebuild_writes_nothing() {
    let mut ws = Workspace::new("-O2");
    let mut linker = new_linker();
    let objects = ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]);
    linker.update(&objects, &NothingLive).unwrap();
    let patch = linker.update(&objects, &NothingLive).unwrap();
    assert!(patch.is_noop(), "{}", patch.describe());
    assert!(patch.file_dirty.is_empty(), "{:?}", patch.file_dirty);
}

// --- random edit sequences -------------------------------------------------------------------------------

/// A generated program: functions and globals spread over units, rendered to C.
#[derive(Debug, Clone)]
struct Model {
    funcs: Vec<Func>,
    globals: Vec<Global>,
}

#[derive(Debug, Clone)]
struct Func {
    unit: usize,
    k: i32,
    /// Extra statements: enough of them outgrow the function's padding.
    bulk: usize,
    /// Index of a function this one calls (if it still exists).
    calls: Option<usize>,
    /// Index of a global it reads.
    reads: Option<usize>,
    text: &'static str,
    alive: bool,
}

#[derive(Debug, Clone)]
struct Global {
    unit: usize,
    init: i32,
    len: usize,
    alive: bool,
}

#[derive(Debug, Clone)]
enum Edit {
    Body(usize, i32),
    Grow(usize),
    Shrink(usize),
    AddFunc(usize),
    RemoveFunc(usize),
    AddGlobal(usize),
    String(usize),
    Init(usize, i32),
    Resize(usize),
}

const UNITS: usize = 3;
const TEXTS: [&str; 3] = ["alpha", "beta", "gamma"];

impl Model {
    fn new() -> Model {
        let funcs = (0..6)
            .map(|i| Func {
                unit: i % UNITS,
                k: i as i32,
                bulk: 0,
                calls: i.checked_sub(1),
                reads: Some(i % 2),
                text: TEXTS[i % 3],
                alive: true,
            })
            .collect();
        let globals = (0..2).map(|i| Global { unit: i, init: 10 + i as i32, len: 2, alive: true }).collect();
        Model { funcs, globals }
    }

    fn apply(&mut self, edit: &Edit) {
        let nf = self.funcs.len();
        let ng = self.globals.len();
        match *edit {
            Edit::Body(f, k) => self.funcs[f % nf].k = k,
            Edit::Grow(f) => self.funcs[f % nf].bulk += 24,
            Edit::Shrink(f) => self.funcs[f % nf].bulk = 0,
            Edit::AddFunc(seed) => self.funcs.push(Func {
                unit: seed % UNITS,
                k: seed as i32,
                bulk: 0,
                calls: Some(seed % nf),
                reads: Some(seed % ng),
                text: TEXTS[seed % 3],
                alive: true,
            }),
            // main calls f0, so f0 stays.
            Edit::RemoveFunc(f) if f % nf != 0 => self.funcs[f % nf].alive = false,
            Edit::RemoveFunc(_) => {}
            Edit::AddGlobal(seed) => self.globals.push(Global {
                unit: seed % UNITS,
                init: seed as i32,
                len: 1 + seed % 3,
                alive: true,
            }),
            Edit::String(f) => {
                let func = &mut self.funcs[f % nf];
                func.text = TEXTS[(TEXTS.iter().position(|t| *t == func.text).unwrap() + 1) % 3];
            }
            Edit::Init(g, v) => self.globals[g % ng].init = v,
            Edit::Resize(g) => self.globals[g % ng].len += 2,
        }
    }

    fn sources(&self) -> Vec<(String, String)> {
        let mut header = String::from("int printf(const char *, ...);\n");
        for (i, f) in self.funcs.iter().enumerate() {
            if f.alive {
                header.push_str(&format!("int f{i}(int x);\n"));
            }
        }
        for (i, g) in self.globals.iter().enumerate() {
            if g.alive {
                header.push_str(&format!("extern int g{i}[{}];\n", g.len));
            }
        }
        let mut units: Vec<String> = (0..UNITS).map(|_| header.clone()).collect();
        units[0].push_str("int main(void) { return f0(1) & 0x7f; }\n");
        for (i, g) in self.globals.iter().enumerate() {
            if g.alive {
                units[g.unit].push_str(&format!("int g{i}[{}] = {{{}}};\n", g.len, g.init));
            }
        }
        for (i, f) in self.funcs.iter().enumerate() {
            if !f.alive {
                continue;
            }
            let mut body = format!("int f{i}(int x) {{\n  int r = x * {} + {};\n", f.k, i);
            for b in 0..f.bulk {
                body.push_str(&format!("  r = (r ^ {b}) * 3 + (x >> {});\n", b % 7));
            }
            if let Some(c) = f.calls.filter(|&c| c != i && self.funcs[c].alive) {
                body.push_str(&format!("  if (x > 0) r += f{c}(x - 1);\n"));
            }
            if let Some(g) = f.reads.filter(|&g| self.globals[g].alive) {
                body.push_str(&format!("  r += g{g}[0];\n"));
            }
            body.push_str(&format!("  if (r == 12345) printf(\"{}\\n\");\n  return r;\n}}\n", f.text));
            units[f.unit].push_str(&body);
        }
        units.into_iter().enumerate().map(|(u, s)| (format!("u{u}"), s)).collect()
    }
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..16usize, -50..50i32).prop_map(|(f, k)| Edit::Body(f, k)),
        (0..16usize).prop_map(Edit::Grow),
        (0..16usize).prop_map(Edit::Shrink),
        (0..16usize).prop_map(Edit::AddFunc),
        (0..16usize).prop_map(Edit::RemoveFunc),
        (0..16usize).prop_map(Edit::AddGlobal),
        (0..16usize).prop_map(Edit::String),
        (0..16usize, -50..50i32).prop_map(|(g, v)| Edit::Init(g, v)),
        (0..16usize).prop_map(Edit::Resize),
    ]
}

/// What must be the same between an incrementally updated image and a fresh link: every atom's name and
/// address-free signature (bytes and symbolic relocations), read through the public symbol map.
fn atoms_by_name(linker: &Linker) -> BTreeMap<String, (u64, got_linker::prepare::AtomClass)> {
    linker.symbol_map().atoms.iter().map(|a| (a.name.clone(), (a.size, a.class))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_edit_sequences_end_equivalent_to_a_fresh_link(edits in proptest::collection::vec(edit_strategy(), 1..7)) {
        let mut model = Model::new();
        let mut ws = Workspace::new("-O1");
        let mut linker = new_linker();
        let to_refs = |s: &[(String, String)]| s.iter().map(|(n, c)| (n.clone(), c.clone())).collect::<Vec<_>>();
        let sources = to_refs(&model.sources());
        let refs: Vec<(&str, String)> = sources.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
        linker.update(&ws.objects(&refs), &NothingLive).unwrap();
        let mut stubs: HashMap<String, Option<u64>> = HashMap::new();
        let mut state: HashMap<String, (u64, u64)> = HashMap::new();
        for edit in &edits {
            model.apply(edit);
            let sources = model.sources();
            let refs: Vec<(&str, String)> = sources.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
            let patch = linker.update(&ws.objects(&refs), &NothingLive).unwrap();
            if let Err(errors) = linker.verify() {
                prop_assert!(false, "after {edit:?}: {}", errors.join("\n"));
            }
            // A function's stub (its address) never changes.
            for (name, stub, _) in linker.symbol_map().stubs {
                let seen = stubs.entry(name.clone()).or_insert(stub);
                if seen.is_some() && stub.is_some() {
                    prop_assert_eq!(*seen, stub, "stub of {} moved", name);
                }
            }
            // A global of unchanged size keeps its address (and its running value: nothing writes it).
            for a in linker.symbol_map().atoms.iter().filter(|a| a.class.is_state()) {
                if let Some(&(addr, size)) = state.get(&a.name) && size == a.size {
                    prop_assert_eq!(addr, a.addr, "global {} moved", a.name);
                    prop_assert!(!patch.writes.iter().any(|w| w.what == a.name), "global {} rewritten: {}", a.name, patch.describe());
                }
                state.insert(a.name.clone(), (a.addr, a.size));
            }
        }
        // The fresh link of the final objects has the same atoms with the same signatures.
        let mut fresh = new_linker();
        let final_objects: Vec<InputObject> = {
            let sources = model.sources();
            let refs: Vec<(&str, String)> = sources.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
            ws.objects(&refs)
        };
        fresh.update(&final_objects, &NothingLive).unwrap();
        fresh.verify().unwrap();
        prop_assert_eq!(atoms_by_name(&fresh), atoms_by_name(&linker));
        prop_assert_eq!(fresh.signatures(), linker.signatures());
    }
}

#[test]
fn a_pending_update_rolled_back_leaves_everything_as_it_was_and_the_same_update_applies_again() {
    let mut ws = Workspace::new("-O0");
    let mut linker = new_linker();
    linker
        .update(&ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR.into())]), &NothingLive)
        .unwrap();
    let before = linker.file().to_vec();
    let (updates, signatures, map) = (linker.updates(), linker.signatures(), linker.symbol_map());
    let grown = ws.objects(&[("main", SEED_MAIN.into()), ("bar", SEED_BAR_GROWN.into())]);
    let pending = linker.update_pending(&grown, &NothingLive).unwrap();
    assert_eq!(pending.summary.moved.len(), 1);
    let pending_file = linker.file().to_vec();
    linker.rollback_pending();
    assert_eq!(linker.file(), before.as_slice());
    assert_eq!((linker.updates(), linker.signatures(), linker.symbol_map()), (updates, signatures, map));
    linker.verify().unwrap();
    // The same update, now committed, gives the same patch.
    let again = linker.update(&grown, &NothingLive).unwrap();
    assert_eq!(again.describe(), pending.describe());
    assert_eq!(linker.file(), pending_file.as_slice());
    linker.verify().unwrap();
}
