//! `cargo xtask gen`: write a generated program (see `progen`) to a directory.

use std::path::PathBuf;

use crate::progen::{self, Params};

pub fn run(args: &[String]) -> Result<(), String> {
    let mut params = Params { functions: 100, units: 4, seed: 1 };
    let mut out = None;
    let mut edit = None;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        let number = |text: &String| text.parse::<u64>().map_err(|e| format!("`{flag} {text}`: {e}"));
        match flag.as_str() {
            "--functions" => params.functions = number(value()?)? as usize,
            "--units" => params.units = number(value()?)? as usize,
            "--seed" => params.seed = number(value()?)?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--edit" => edit = Some(number(value()?)? as usize),
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("`--out DIR` is required\n\n{USAGE}"))?;
    if params.functions == 0 || params.units == 0 {
        return Err("--functions and --units must be at least 1".into());
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(function) = edit {
        if function >= params.functions {
            return Err(format!("--edit {function}: the program has functions 0..{}", params.functions));
        }
        // Each call makes the next edit of that function, so repeated calls keep producing new bodies.
        let marker = out.join(format!(".edits-{function}"));
        let generation =
            std::fs::read_to_string(&marker).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0) + 1;
        let file = progen::edit_one(params, function, generation);
        let path = out.join(&file.name);
        std::fs::write(&path, file.text).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&marker, generation.to_string()).map_err(|e| format!("{}: {e}", marker.display()))?;
        eprintln!("gen: edited f_{function} (edit {generation}) in {}", path.display());
        return Ok(());
    }
    for file in progen::generate(params) {
        let path = out.join(&file.name);
        std::fs::write(&path, file.text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!(
        "gen: {} functions in {} units (seed {}) written to {}",
        params.functions,
        params.units,
        params.seed,
        out.display()
    );
    Ok(())
}

pub const USAGE: &str = "usage: cargo xtask gen --out DIR [--functions N] [--units M] [--seed S] [--edit F]\n\
     --edit F rewrites only the unit of function F with a new body for it (the same N, M and seed as the \
     generation)";
