//! `darwin-run [--no-aslr] [--trace] EXE [ARGS...]`: runs a linked arm64 macOS executable in the simulator,
//! passing its stdout and stderr through and exiting with its exit status (128 + signal when it crashed).

use std::path::PathBuf;
use std::process::ExitCode;

use darwin_sim::{ExitStatus, RunOptions, run_exe};

const USAGE: &str = "usage: darwin-run [--no-aslr] [--trace] EXE [ARGS...]";

fn main() -> ExitCode {
    let mut options = RunOptions { echo: true, ..RunOptions::default() };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(flag) = args.peek().filter(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--no-aslr" => options.aslr = false,
            "--trace" => options.trace = true,
            "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("darwin-run: unknown option {other}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        args.next();
    }
    let Some(exe) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match run_exe(&PathBuf::from(&exe), &rest, &options) {
        Ok(outcome) => {
            if let ExitStatus::Signaled { .. } = &outcome.status {
                eprintln!("darwin-run: {exe}: {}", outcome.status);
            }
            ExitCode::from(outcome.status.shell_code() as u8)
        }
        Err(e) => {
            eprintln!("{e}");
            // dyld aborts a program it cannot launch.
            ExitCode::from(128 + darwin_sim::machine::SIGABRT as u8)
        }
    }
}
