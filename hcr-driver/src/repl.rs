//! The terminal REPL's command language: the same commands as the control socket, spelled for people.
//!
//! `update`, `run`, `update-and-run`, `hot-update`, `status`, `layout [SYMBOL]`, `reset NAME`, `exit`, and
//! `help`. An empty line repeats the last command, as in Zig's `--watch` REPL, so that hot-updating again is one
//! key press.

use crate::protocol::Command;

/// What a REPL line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplInput {
    Command(Command),
    Help,
    /// An empty line: repeat the last command, if any.
    Repeat,
}

/// The help text, one command a line.
pub const HELP: &str = "\
commands:
  update          recompile what changed and relink the executable file (the running process is untouched)
  run             launch the program (again)
  update-and-run  update, then run
  hot-update      recompile, relink, and patch the running process
  status          the process, the link state and the last update
  layout [SYMBOL] the image's map, or one symbol's place in it
  reset NAME      re-apply the initializer of the global NAME in the running process
  exit            stop the program and hcr
  help            this text
An empty line repeats the last command.";

/// Parses one line typed at the prompt.
pub fn parse_line(line: &str) -> Result<ReplInput, String> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else { return Ok(ReplInput::Repeat) };
    let args: Vec<&str> = words.collect();
    let no_args = |command: Command| {
        if args.is_empty() {
            Ok(ReplInput::Command(command))
        } else {
            Err(format!("`{verb}` takes no arguments"))
        }
    };
    match verb {
        "update" => no_args(Command::Update),
        "run" => no_args(Command::Run),
        "update-and-run" => no_args(Command::UpdateAndRun),
        "hot-update" => no_args(Command::HotUpdate),
        "status" => no_args(Command::Status),
        "exit" | "quit" => no_args(Command::Exit),
        "help" | "?" => Ok(ReplInput::Help),
        "layout" => match args[..] {
            [] => Ok(ReplInput::Command(Command::Layout { symbol: None })),
            [symbol] => Ok(ReplInput::Command(Command::Layout { symbol: Some(symbol.to_string()) })),
            _ => Err("usage: layout [SYMBOL]".to_string()),
        },
        "reset" => match args[..] {
            [name] => Ok(ReplInput::Command(Command::Reset { name: name.to_string() })),
            _ => Err("usage: reset NAME".to_string()),
        },
        other => Err(format!("unknown command `{other}`; type `help` for the list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> Command {
        match parse_line(line) {
            Ok(ReplInput::Command(command)) => command,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(command("update"), Command::Update);
        assert_eq!(command("run"), Command::Run);
        assert_eq!(command("update-and-run"), Command::UpdateAndRun);
        assert_eq!(command("  hot-update  "), Command::HotUpdate);
        assert_eq!(command("status"), Command::Status);
        assert_eq!(command("layout"), Command::Layout { symbol: None });
        assert_eq!(command("layout _bar"), Command::Layout { symbol: Some("_bar".into()) });
        assert_eq!(command("reset counter"), Command::Reset { name: "counter".into() });
        assert_eq!(command("exit"), Command::Exit);
        assert_eq!(parse_line("help"), Ok(ReplInput::Help));
    }

    #[test]
    fn an_empty_line_repeats() {
        assert_eq!(parse_line(""), Ok(ReplInput::Repeat));
        assert_eq!(parse_line("   \t"), Ok(ReplInput::Repeat));
    }

    #[test]
    fn mistakes_say_what_is_expected() {
        assert_eq!(parse_line("reset"), Err("usage: reset NAME".to_string()));
        assert_eq!(parse_line("reset a b"), Err("usage: reset NAME".to_string()));
        assert_eq!(parse_line("layout a b"), Err("usage: layout [SYMBOL]".to_string()));
        assert_eq!(parse_line("run now"), Err("`run` takes no arguments".to_string()));
        assert!(parse_line("hotupdate").unwrap_err().contains("unknown command `hotupdate`"));
    }
}
