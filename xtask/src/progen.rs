//! Generated C programs for benchmarks and long tests: N functions over M translation units, with the shapes
//! real programs have — a call graph, globals that functions read and write, string literals, `const` tables,
//! and function-pointer tables — and deterministic output, so that the same program linked by two linkers must
//! print the same thing.
//!
//! Generation is a pure function of the parameters and the seed (its own small PRNG, because xtask has no
//! dependencies), so a size is generated once, compiled once and cached by its parameters.
//!
//! Termination: `f_i` calls only functions with a smaller index and passes `depth - 1`, and stops at depth 0,
//! so every call from `main` ends and does at most `2^depth` calls.

use std::fmt::Write as _;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub functions: usize,
    pub units: usize,
    pub seed: u64,
}

/// One generated file: its name and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub text: String,
}

/// The call depth `main` starts each call with.
const DEPTH: u32 = 3;
/// Functions `main` calls; the rest are reached through calls and tables.
const ROOTS: usize = 64;

/// splitmix64: tiny, fast, and good enough to vary program shapes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The unit that defines function `i`.
pub fn unit_of(i: usize, units: usize) -> usize {
    i % units
}

/// The generated program: `prog.h`, `main.c` and `unit_K.c` for each unit.
pub fn generate(params: Params) -> Vec<File> {
    assert!(params.functions >= 1 && params.units >= 1, "a program has at least one function and one unit");
    let mut files = vec![header(params), main_unit(params)];
    for unit in 0..params.units {
        files.push(unit_file(params, unit, None));
    }
    files
}

/// The unit holding function `edited` after a one-function edit (its body computes something else), for the
/// "one function changed" measurements. Every other unit is unchanged.
pub fn edit_one(params: Params, edited: usize, generation: u32) -> File {
    unit_file(params, unit_of(edited, params.units), Some((edited, generation)))
}

fn header(params: Params) -> File {
    let mut text = String::from("#ifndef PROG_H\n#define PROG_H\n\ntypedef int (*fn_t)(int, int);\n\n");
    for i in 0..params.functions {
        let _ = writeln!(text, "int f_{i}(int x, int depth);");
    }
    for unit in 0..params.units {
        let _ = writeln!(text, "extern int g_{unit};\nextern const fn_t table_{unit}[4];");
    }
    text.push_str("\n#endif\n");
    File { name: "prog.h".into(), text }
}

fn main_unit(params: Params) -> File {
    let mut rng = Rng(params.seed ^ 0x6d61_696e);
    let mut text =
        String::from("#include <stdio.h>\n#include \"prog.h\"\n\nint main(void) {\n    unsigned sum = 0;\n");
    let roots = ROOTS.min(params.functions);
    for k in 0..roots {
        let f = rng.below(params.functions);
        let _ = writeln!(text, "    sum = sum * 31u + (unsigned)f_{f}({k}, {DEPTH});");
    }
    let _ = writeln!(text, "    printf(\"checksum %u\\n\", sum);");
    for unit in 0..params.units.min(8) {
        let _ = writeln!(text, "    printf(\"g_{unit} %d\\n\", g_{unit});");
    }
    text.push_str("    return 0;\n}\n");
    File { name: "main.c".into(), text }
}

/// One unit: its global, a string table, a function-pointer table, and its functions.
fn unit_file(params: Params, unit: usize, edit: Option<(usize, u32)>) -> File {
    let mut rng = Rng(params.seed.wrapping_add(unit as u64 + 1));
    let mut text = String::from("#include \"prog.h\"\n\n");
    let _ = writeln!(text, "int g_{unit} = {};", rng.below(1000));
    let _ = writeln!(text, "static int calls_{unit};");
    let _ = writeln!(
        text,
        "static const char *const names_{unit}[4] = {{\"alpha {unit}\", \"beta {unit}\", \"gamma {unit}\", \"delta {unit}\"}};"
    );
    let mut table = Vec::new();
    for _ in 0..4 {
        table.push(format!("f_{}", rng.below(params.functions)));
    }
    let _ = writeln!(text, "const fn_t table_{unit}[4] = {{{}}};\n", table.join(", "));
    for i in (unit..params.functions).step_by(params.units) {
        let mut frng = Rng(params.seed.wrapping_mul(0x100_0000_01b3) ^ i as u64);
        let mul = 3 + frng.below(29) as u64;
        let add = frng.below(1 << 12) as u64;
        let (mul, add) = match edit {
            Some((edited, generation)) if edited == i && generation > 0 => {
                (mul + 2 * generation as u64, add ^ 0x55)
            }
            _ => (mul, add),
        };
        let _ = writeln!(text, "int f_{i}(int x, int depth) {{");
        // Unsigned arithmetic: signed overflow would be undefined behaviour, and the output must not depend on
        // what a compiler makes of it.
        let _ = writeln!(text, "    unsigned acc = (unsigned)x * {mul}u + {add}u + (unsigned)g_{unit};");
        let _ = writeln!(text, "    calls_{unit}++;");
        let _ = writeln!(text, "    acc += names_{unit}[acc & 3][acc & 1];");
        if i == 0 {
            // The leaf of the call graph: it has no one to pass the depth to.
            let _ = writeln!(text, "    (void)depth;");
        } else {
            let callee = frng.below(i);
            let other = unit_of(frng.below(params.functions), params.units);
            let _ = writeln!(text, "    if (depth > 0) {{");
            let _ = writeln!(text, "        acc ^= (unsigned)f_{callee}((int)(acc & 0xff), depth - 1);");
            if frng.below(3) == 0 {
                let _ = writeln!(
                    text,
                    "        acc += (unsigned)table_{other}[acc & 3]((int)(acc & 0x7f), depth - 1);"
                );
            }
            let _ = writeln!(text, "    }}");
        }
        let _ = writeln!(text, "    g_{unit} += (int)(acc & 1);");
        let _ = writeln!(text, "    return (int)(acc + (unsigned)(calls_{unit} % 7));\n}}\n");
    }
    File { name: format!("unit_{unit}.c"), text }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Params = Params { functions: 10, units: 3, seed: 7 };

    #[test]
    fn generation_is_deterministic_and_complete() {
        let files = generate(SMALL);
        assert_eq!(files, generate(SMALL));
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["prog.h", "main.c", "unit_0.c", "unit_1.c", "unit_2.c"]);
        for i in 0..SMALL.functions {
            let unit = &files[2 + unit_of(i, SMALL.units)];
            assert!(unit.text.contains(&format!("int f_{i}(int x, int depth) {{")), "f_{i} in {}", unit.name);
        }
        assert_ne!(generate(Params { seed: 8, ..SMALL }), files, "the seed changes the program");
    }

    #[test]
    fn calls_only_go_down_so_every_call_ends() {
        for file in generate(Params { functions: 200, units: 7, seed: 1 })
            .iter()
            .filter(|f| f.name.starts_with("unit"))
        {
            let mut current = None;
            for line in file.text.lines() {
                if let Some(rest) = line.strip_prefix("int f_") {
                    current = rest.split('(').next().and_then(|n| n.parse::<usize>().ok());
                }
                if let (Some(i), Some(call)) = (current, line.trim().strip_prefix("acc ^= (unsigned)f_")) {
                    let callee: usize = call.split('(').next().unwrap().parse().unwrap();
                    assert!(callee < i, "f_{i} calls f_{callee}");
                }
            }
        }
    }

    #[test]
    fn a_one_function_edit_changes_only_that_function() {
        let params = Params { functions: 12, units: 4, seed: 3 };
        let before = &generate(params)[2 + unit_of(5, 4)];
        let after = edit_one(params, 5, 1);
        assert_eq!(before.name, after.name);
        let differing: Vec<(&str, &str)> =
            before.text.lines().zip(after.text.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(differing.len(), 1, "{differing:?}");
        assert!(differing[0].0.starts_with("    unsigned acc = (unsigned)x * "));
        assert_eq!(edit_one(params, 5, 0).text, before.text, "generation 0 is the original");
    }

    /// The generated C is valid, warning-free, terminates and prints the same thing every run: built and run
    /// natively (the program is portable C), which checks the generator independently of the arm64 toolchain.
    #[test]
    fn the_program_compiles_cleanly_runs_and_is_deterministic() {
        let dir = std::env::temp_dir().join(format!("progen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let params = Params { functions: 300, units: 5, seed: 11 };
        let mut sources = Vec::new();
        for file in generate(params) {
            std::fs::write(dir.join(&file.name), &file.text).unwrap();
            if file.name.ends_with(".c") {
                sources.push(dir.join(&file.name));
            }
        }
        let exe = dir.join("prog");
        let status = std::process::Command::new("cc")
            .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .args(&sources)
            .status()
            .expect("the host C compiler `cc` runs");
        assert!(status.success(), "the generated program must compile without warnings");
        let run = || std::process::Command::new(&exe).output().unwrap();
        let (first, second) = (run(), run());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(first.status.success());
        let text = String::from_utf8(first.stdout.clone()).unwrap();
        assert!(text.starts_with("checksum "), "{text}");
        assert_eq!(text.lines().count(), 1 + 5, "the checksum and one line per global");
        assert_eq!(first.stdout, second.stdout);
    }
}
