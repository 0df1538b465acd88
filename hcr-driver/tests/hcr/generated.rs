//! Generated hot-reload runs: a generated program runs in the simulator while random edits are hot-applied to
//! it. After every update each function is called inside the running process (as a debugger's expression
//! evaluator would) and in a fresh `ld64.lld-19` link of the same sources whose globals hold what the contract
//! says they must (kept, new, or reset), and the results must agree; the globals of the running process must
//! hold exactly those values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use darwin_sim::{Process, RunOptions};
use hcr_driver::build::{BuildOptions, Project, Sdk};
use hcr_driver::session::Session;
use hcr_driver::session::sim::SimLauncher;
use mach_task::Task as _;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Func {
    unit: usize,
    k: i32,
    bulk: usize,
    calls: Option<usize>,
    reads: Option<usize>,
    /// Read through a function-pointer table instead of a direct call.
    through_table: bool,
    text: &'static str,
    alive: bool,
}

#[derive(Debug, Clone)]
struct Global {
    unit: usize,
    init: i32,
    len: usize,
    alive: bool,
    /// What the running program must hold: the initializer it was created (or last reset) with.
    expected: i32,
}

#[derive(Debug, Clone)]
struct Model {
    funcs: Vec<Func>,
    globals: Vec<Global>,
}

#[derive(Debug, Clone)]
enum Edit {
    Body(usize, i32),
    Grow(usize),
    AddFunc(usize),
    RemoveFunc(usize),
    AddGlobal(usize),
    Text(usize),
    Init(usize, i32),
    Resize(usize),
}

const UNITS: usize = 2;
const TEXTS: [&str; 3] = ["alpha", "beta", "gamma"];

impl Model {
    fn new() -> Model {
        let funcs = (0..5)
            .map(|i| Func {
                unit: i % UNITS,
                k: i as i32 + 2,
                bulk: 0,
                calls: i.checked_sub(1),
                reads: Some(i % 2),
                through_table: i % 2 == 1,
                text: TEXTS[i % 3],
                alive: true,
            })
            .collect();
        let globals = (0..2)
            .map(|i| Global { unit: i, init: 10 + i as i32, len: 2, alive: true, expected: 10 + i as i32 })
            .collect();
        Model { funcs, globals }
    }

    fn apply(&mut self, edit: &Edit) {
        let (nf, ng) = (self.funcs.len(), self.globals.len());
        match *edit {
            Edit::Body(f, k) => self.funcs[f % nf].k = k,
            Edit::Grow(f) => self.funcs[f % nf].bulk += 20,
            Edit::AddFunc(seed) => self.funcs.push(Func {
                unit: seed % UNITS,
                k: seed as i32,
                bulk: 0,
                calls: Some(seed % nf),
                reads: Some(seed % ng),
                through_table: seed % 2 == 0,
                text: TEXTS[seed % 3],
                alive: true,
            }),
            // main calls f0, so f0 stays.
            Edit::RemoveFunc(f) if f % nf != 0 => self.funcs[f % nf].alive = false,
            Edit::RemoveFunc(_) => {}
            Edit::AddGlobal(seed) => {
                let init = seed as i32 * 3 + 1;
                self.globals.push(Global {
                    unit: seed % UNITS,
                    init,
                    len: 1 + seed % 3,
                    alive: true,
                    expected: init,
                })
            }
            Edit::Text(f) => {
                let func = &mut self.funcs[f % nf];
                func.text = TEXTS[(TEXTS.iter().position(|t| *t == func.text).unwrap() + 1) % 3];
            }
            // A new initializer: the running program keeps its value (contract item 4).
            Edit::Init(g, v) => self.globals[g % ng].init = v,
            // A new size: fresh storage, initialised from the new object.
            Edit::Resize(g) => {
                let global = &mut self.globals[g % ng];
                global.len += 2;
                global.expected = global.init;
            }
        }
    }

    fn sources(&self) -> Vec<(String, String)> {
        let mut header = String::from("int printf(const char *, ...);\ntypedef int (*fn_t)(int);\n");
        for i in (0..self.funcs.len()).filter(|&i| self.funcs[i].alive) {
            header.push_str(&format!("int f{i}(int x);\n"));
        }
        for (i, g) in self.globals.iter().enumerate().filter(|(_, g)| g.alive) {
            header.push_str(&format!("extern int g{i}[{}];\n", g.len));
        }
        let mut units: Vec<String> = (0..UNITS).map(|_| header.clone()).collect();
        units[0].push_str(
            "#include <unistd.h>\nstatic volatile int sink;\n\
             int main(void) { for (int i = 0; i < 1000000; i++) { sink += f0(i & 3); usleep(2000); } return 0; }\n",
        );
        for (i, g) in self.globals.iter().enumerate().filter(|(_, g)| g.alive) {
            units[g.unit].push_str(&format!("int g{i}[{}] = {{{}}};\n", g.len, g.init));
        }
        for (i, f) in self.funcs.iter().enumerate().filter(|(_, f)| f.alive) {
            let mut body = format!("int f{i}(int x) {{\n  int r = x * {} + {i};\n", f.k);
            for b in 0..f.bulk {
                body.push_str(&format!("  r = (r ^ {b}) * 3 + (x >> {});\n", b % 5));
            }
            if let Some(c) = f.calls.filter(|&c| c < i && self.funcs[c].alive) {
                if f.through_table {
                    body.push_str(&format!(
                        "  static fn_t table[] = {{ f{c} }};\n  if (x > 0) r += table[0](x - 1);\n"
                    ));
                } else {
                    body.push_str(&format!("  if (x > 0) r += f{c}(x - 1);\n"));
                }
            }
            if let Some(g) = f.reads.filter(|&g| self.globals[g].alive) {
                body.push_str(&format!("  r += g{g}[0];\n"));
            }
            body.push_str(&format!("  if (r == 123456789) printf(\"{}\\n\");\n  return r;\n}}\n", f.text));
            units[f.unit].push_str(&body);
        }
        units.into_iter().enumerate().map(|(u, s)| (format!("u{u}.c"), s)).collect()
    }
}

fn edits() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..12usize, -20..20i32).prop_map(|(f, k)| Edit::Body(f, k)),
        (0..12usize).prop_map(Edit::Grow),
        (0..12usize).prop_map(Edit::AddFunc),
        (0..12usize).prop_map(Edit::RemoveFunc),
        (0..12usize).prop_map(Edit::AddGlobal),
        (0..12usize).prop_map(Edit::Text),
        (0..12usize, -20..20i32).prop_map(|(g, v)| Edit::Init(g, v)),
        (0..12usize).prop_map(Edit::Resize),
    ]
}

fn write_sources(dir: &Path, model: &Model) -> Vec<PathBuf> {
    model
        .sources()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(&path, text).unwrap();
            }
            path
        })
        .collect()
}

/// A fresh link of the same sources by ld64.lld-19, not started.
fn fresh(dir: &Path, sources: &[PathBuf]) -> (PathBuf, Process) {
    let mut objects = Vec::new();
    for source in sources {
        let object = dir.join(source.file_name().unwrap()).with_extension("o");
        let out = Command::new("clang-19")
            .args(darwin_sim::sdk::clang_args())
            .args(["-O0", "-fno-asynchronous-unwind-tables", "-c"])
            .arg(source)
            .arg("-o")
            .arg(&object)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        objects.push(object);
    }
    let exe = dir.join("fresh");
    let out = Command::new("ld64.lld-19")
        .args(darwin_sim::sdk::ld_args())
        .args(&objects)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let process = Process::spawn(&exe, &[], &RunOptions::default()).unwrap();
    (exe, process)
}

fn symbols(file: &[u8]) -> BTreeMap<String, u64> {
    let map = macho_layout::read::read_map(file).unwrap();
    map.symbols.iter().filter(|s| s.external).map(|s| (s.name.clone(), s.addr)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn hot_updated_programs_compute_what_a_fresh_link_computes(edits in proptest::collection::vec(edits(), 1..5)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let sources = write_sources(dir.path(), &model);
        let options = BuildOptions {
            out: dir.path().join("prog"),
            inputs: sources.clone(),
            flags: vec!["-O0".into()],
            sdk: Sdk::locate(None).unwrap(),
            cc: None,
        };
        let mut session = Session::new(Project::open(options).unwrap(), SimLauncher, Vec::new(), true);
        session.update().unwrap();
        session.run().unwrap();
        for edit in &edits {
            model.apply(edit);
            let sources = write_sources(dir.path(), &model);
            session.hot_update().unwrap_or_else(|e| panic!("{edit:?}: {e}"));
            let live = &session.target().unwrap().0;
            prop_assert!(live.status().is_none(), "the program ended after {edit:?}: {:?}", live.status());
            let live_symbols = symbols(session.project().linker().file());
            let fresh_dir = dir.path().join("fresh");
            std::fs::create_dir_all(&fresh_dir).unwrap();
            let (fresh_exe, fresh) = fresh(&fresh_dir, &sources);
            let fresh_symbols = symbols(&std::fs::read(&fresh_exe).unwrap());
            let stopped = live.suspend().unwrap();
            // Globals: the running program holds what the contract says; the fresh one is given the same.
            for (i, g) in model.globals.iter().enumerate().filter(|(_, g)| g.alive) {
                let name = format!("_g{i}");
                let addr = live_symbols[&name] + live.slide();
                let value = stopped.task().read_u64(addr).unwrap() as u32 as i32;
                prop_assert_eq!(value, g.expected, "{} after {:?}", name, edit);
                fresh.write_data(fresh_symbols[&name] + fresh.slide(), &g.expected.to_le_bytes()).unwrap();
            }
            for (i, f) in model.funcs.iter().enumerate().filter(|(_, f)| f.alive) {
                let name = format!("_f{i}");
                for x in [0u64, 1, 3] {
                    let here = live.call_function(live_symbols[&name] + live.slide(), &[x]).unwrap() as u32;
                    let there = fresh.call_function(fresh_symbols[&name] + fresh.slide(), &[x]).unwrap() as u32;
                    prop_assert_eq!(here, there, "{}({}) after {:?}; {:?}", name, x, edit, f);
                }
            }
            stopped.resume().unwrap();
        }
    }
}
