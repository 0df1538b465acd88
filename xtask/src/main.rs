//! `cargo xtask`: the project's automation, in Rust so it runs the same everywhere.
//!
//! One file per subcommand. xtask has no dependencies on purpose: it must build on a bare machine, before
//! `setup` has installed anything, and it must not need the toolchain it installs.

mod bench;
mod ci;
mod cmd;
mod demo;
mod e2e;
mod generate;
mod progen;
mod setup;
mod soak;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup   install what the project needs (clang-19, lld-19, llvm-19, cmake, the aarch64-apple-darwin target)
  ci      setup, then formatting, clippy (host and aarch64-apple-darwin), macOS type-check, and every test
  gen     write a generated C program: --out DIR [--functions N] [--units M] [--seed S] [--edit F]
  e2e     hot-reload scenarios end to end (tests/e2e/): [--jobs N] [--keep] [--hcr PATH] [SCENARIO...]
  bench   patch latency and link speed against ld64.lld-19: [--quick] [--write-md] [--sizes N,N...] [--reps R]
  demo    a scripted hot-reload session of the seed example, narrated
  soak    many consecutive hot updates on one running program: [--updates N] [--functions F] [--check-every K] [--threads T]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("ci") => ci::run(),
        Some("gen") => generate::run(&args[1..]),
        Some("e2e") => e2e::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
