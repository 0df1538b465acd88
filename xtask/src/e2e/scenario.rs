//! The scenario file: what to launch, and for each step what to change, what to send and what must follow.
//!
//! The format is line-based and described for authors in `tests/e2e/README.md`; this module is its parser and
//! its line patterns. Parsing is strict: an unknown directive or a malformed one is an error naming the file
//! and line, so a typo cannot silently turn an expectation off.

use std::fs;
use std::path::{Path, PathBuf};

/// One scenario folder, parsed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The folder's name.
    pub name: String,
    pub dir: PathBuf,
    /// The ASLR settings to run the whole scenario with (`true` = on), in order.
    pub aslr: Vec<bool>,
    /// Extra arguments to `hcr run`, before the sources (`-O1`, `-DNAME`, ...).
    pub flags: Vec<String>,
    /// The translation units, relative to `src/`.
    pub sources: Vec<String>,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The steps; the first is `start` (the launch), with no command.
    pub steps: Vec<Step>,
}

/// One step: edit the sources, send a command, check what follows.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The step's name (`start`, `01`, ...); its edits come from `steps/NAME/`.
    pub name: String,
    /// What the step does, for people.
    pub title: String,
    /// Files to delete from `src/` before the command.
    pub deletes: Vec<String>,
    /// The request to send (`None` for `start` and `send none`).
    pub command: Option<Request>,
    /// `None`: the command must succeed; `Some((kind, text))`: it must fail with that kind, and its message
    /// must contain `text` when one is given.
    pub error: Option<(String, Option<String>)>,
    pub report: Vec<ReportCheck>,
    pub output: Vec<OutputCheck>,
    /// Lines that must not appear in the step's output window (see `tests/e2e/README.md`).
    pub never: Vec<Pattern>,
    pub process: Option<ProcessCheck>,
}

/// A control-protocol request, without its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cmd: String,
    /// `reset`'s `name`, `layout`'s `symbol`.
    pub arg: Option<String>,
}

impl Request {
    /// The request line for `id`.
    pub fn to_json(&self, id: u64) -> String {
        let field = match (self.cmd.as_str(), &self.arg) {
            ("reset", Some(name)) => format!(",\"name\":\"{}\"", escape(name)),
            (_, Some(symbol)) => format!(",\"symbol\":\"{}\"", escape(symbol)),
            (_, None) => String::new(),
        };
        format!("{{\"id\":{id},\"cmd\":\"{}\"{field}}}", escape(&self.cmd))
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The report lists a symbol can be looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Added,
    Changed,
    Moved,
    Removed,
    Kept,
    Reset,
    Import,
    /// Translation units compiled by the update (file names).
    Recompiled,
}

impl List {
    /// The report field holding the list.
    pub fn field(self) -> &'static str {
        match self {
            List::Added => "added",
            List::Changed => "changed_in_place",
            List::Moved => "moved",
            List::Removed => "removed",
            List::Kept => "globals_kept",
            List::Reset => "globals_reset",
            List::Import => "new_imports",
            List::Recompiled => "recompiled",
        }
    }
}

/// An expectation on the update report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportCheck {
    /// The symbol is in the list (for `moved`, with that reason when one is given).
    In { list: List, symbol: String, reason: Option<String> },
    /// The symbol is in none of added, changed, moved and removed.
    Untouched(String),
    /// The symbol was changed in place or moved: either is right for a function a thread may be inside at the
    /// moment of the update, which is moved rather than overwritten.
    Updated(String),
}

/// An expectation on the program's output after the command.
#[derive(Debug, Clone)]
pub enum OutputCheck {
    /// A line matching the pattern appears (after the previous `line`'s match).
    Line(Pattern),
    /// The number at `#` keeps growing: the matching lines after the command continue, strictly increasing,
    /// from the last matching line before it.
    Counts(Pattern),
    /// A matching line after the command has a number at `#` below the last one before the command.
    Restarts(Pattern),
}

/// An expectation on the process, read through `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessCheck {
    Running,
    /// It has ended, and its status text contains the given text, if any.
    Exited(Option<String>),
}

impl Scenario {
    /// Reads `DIR/scenario`.
    pub fn load(dir: &Path) -> Result<Scenario, String> {
        let file = dir.join("scenario");
        let text = fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut scenario =
            parse(&name, dir, &text).map_err(|(line, e)| format!("{}:{line}: {e}", file.display()))?;
        if scenario.sources.is_empty() {
            scenario.sources = c_files(&dir.join("src"))?;
        }
        if scenario.sources.is_empty() {
            return Err(format!("{}: no sources (no `sources` line and no src/*.c)", dir.display()));
        }
        Ok(scenario)
    }
}

/// The `*.c` files directly in `dir`, sorted.
fn c_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".c"))
        .collect();
    names.sort();
    Ok(names)
}

/// Parses a scenario file's text; errors carry their 1-based line number.
fn parse(name: &str, dir: &Path, text: &str) -> Result<Scenario, (usize, String)> {
    let mut scenario = Scenario {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        aslr: vec![true],
        flags: Vec::new(),
        sources: Vec::new(),
        args: Vec::new(),
        steps: vec![Step { name: "start".into(), title: "launch".into(), ..Step::default() }],
    };
    let mut header = true;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let err = |message: String| (number, message);
        let words: Vec<String> = rest.split_whitespace().map(String::from).collect();
        match word {
            "aslr" if header => {
                scenario.aslr = match rest {
                    "on" => vec![true],
                    "off" => vec![false],
                    "both" => vec![true, false],
                    _ => return Err(err(format!("`aslr` takes on, off or both, not `{rest}`"))),
                }
            }
            "flags" if header => scenario.flags = words,
            "sources" if header => scenario.sources = words,
            "args" if header => scenario.args = words,
            "start" => {
                if !header {
                    return Err(err("`start` must come before the first step".into()));
                }
            }
            "step" => {
                header = false;
                let (step_name, title) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if step_name.is_empty() || step_name.contains(['/', '.']) {
                    return Err(err(format!(
                        "a step needs a plain name (a folder under steps/), not `{step_name}`"
                    )));
                }
                if scenario.steps.iter().any(|s| s.name == step_name) {
                    return Err(err(format!("step `{step_name}` is defined twice")));
                }
                scenario.steps.push(Step {
                    name: step_name.to_string(),
                    title: title.trim().to_string(),
                    command: Some(Request { cmd: "hot_update".into(), arg: None }),
                    ..Step::default()
                });
            }
            _ => {
                let step = scenario.steps.last_mut().expect("there is always a start step");
                step_directive(step, word, rest, &words).map_err(err)?;
            }
        }
    }
    Ok(scenario)
}

/// One directive inside a step (or the start block).
fn step_directive(step: &mut Step, word: &str, rest: &str, words: &[String]) -> Result<(), String> {
    let is_start = step.name == "start";
    let symbol = |what: &str| -> Result<String, String> {
        match words {
            [symbol] => Ok(symbol.clone()),
            [symbol, reason] if what == "moved" => Ok(format!("{symbol} {reason}")),
            _ => Err(format!(
                "`{what}` takes one symbol name{}",
                if what == "moved" { " and an optional reason" } else { "" }
            )),
        }
    };
    let list = match word {
        "added" => Some(List::Added),
        "changed" => Some(List::Changed),
        "moved" => Some(List::Moved),
        "removed" => Some(List::Removed),
        "kept" => Some(List::Kept),
        "reset" => Some(List::Reset),
        "import" => Some(List::Import),
        "recompiled" => Some(List::Recompiled),
        _ => None,
    };
    if let Some(list) = list {
        let text = symbol(word)?;
        let (symbol, reason) = match text.split_once(' ') {
            Some((s, r)) => (s.to_string(), Some(r.to_string())),
            None => (text, None),
        };
        step.report.push(ReportCheck::In { list, symbol, reason });
        return Ok(());
    }
    match word {
        "untouched" => step.report.push(ReportCheck::Untouched(symbol(word)?)),
        "updated" => step.report.push(ReportCheck::Updated(symbol(word)?)),
        "delete" if !is_start => {
            if words.len() != 1 || rest.contains("..") {
                return Err("`delete` takes one file name inside src/".into());
            }
            step.deletes.push(rest.to_string());
        }
        "send" if !is_start => {
            step.command = match words {
                [none] if none == "none" => None,
                [cmd] if cmd != "reset" => Some(Request { cmd: cmd.clone(), arg: None }),
                [cmd, arg] if cmd == "reset" || cmd == "layout" => {
                    Some(Request { cmd: cmd.clone(), arg: Some(arg.clone()) })
                }
                _ => return Err(format!("`send` takes a command (and a name for reset), not `{rest}`")),
            };
        }
        "ok" if !is_start && words.is_empty() => step.error = None,
        "error" if !is_start => {
            let (kind, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if kind.is_empty() {
                return Err("`error` takes a kind (compile, link, patch, ...)".into());
            }
            let text = text.trim();
            step.error = Some((kind.to_string(), (!text.is_empty()).then(|| text.to_string())));
        }
        "line" => step.output.push(OutputCheck::Line(Pattern::new(rest)?)),
        "counts" | "restarts" => {
            let pattern = Pattern::new(rest)?;
            if pattern.numbers() != 1 {
                return Err(format!("`{word}` needs a pattern with exactly one `#`"));
            }
            step.output.push(if word == "counts" {
                OutputCheck::Counts(pattern)
            } else {
                OutputCheck::Restarts(pattern)
            });
        }
        "never" => step.never.push(Pattern::new(rest)?),
        "process" => {
            step.process = Some(match rest.split_once(char::is_whitespace).unwrap_or((rest, "")) {
                ("running", "") => ProcessCheck::Running,
                ("exited", text) => {
                    let text = text.trim();
                    ProcessCheck::Exited((!text.is_empty()).then(|| text.to_string()))
                }
                _ => return Err(format!("`process` takes running or exited [TEXT], not `{rest}`")),
            })
        }
        _ => {
            return Err(format!(
                "unknown directive `{word}`{}",
                if is_start { " (in the start block)" } else { "" }
            ));
        }
    }
    Ok(())
}

/// A whole-line pattern: `*` matches any run of characters, `#` an integer (an optional `-` and digits), and
/// every other character itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Number,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a line pattern cannot be empty".into());
        }
        let tokens = text
            .chars()
            .map(|c| match c {
                '*' => Token::Any,
                '#' => Token::Number,
                c => Token::Char(c),
            })
            .collect();
        Ok(Pattern { text: text.to_string(), tokens })
    }

    /// How many `#` the pattern has.
    fn numbers(&self) -> usize {
        self.tokens.iter().filter(|t| **t == Token::Number).count()
    }

    /// Whether the whole line matches.
    pub fn matches(&self, line: &str) -> bool {
        self.captures(line).is_some()
    }

    /// The integers matched by the `#`s, in order, when the whole line matches.
    pub fn captures(&self, line: &str) -> Option<Vec<i64>> {
        let chars: Vec<char> = line.chars().collect();
        let mut numbers = Vec::new();
        match_here(&self.tokens, &chars, &mut numbers).then_some(numbers)
    }

    /// The first `#`'s integer, when the whole line matches.
    pub fn number(&self, line: &str) -> Option<i64> {
        self.captures(line)?.first().copied()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Backtracking match of `tokens` against all of `line`, pushing `#` captures (and popping them again on a
/// dead end). Lines and patterns are short, so the worst case does not matter.
fn match_here(tokens: &[Token], line: &[char], numbers: &mut Vec<i64>) -> bool {
    let Some((&first, rest)) = tokens.split_first() else { return line.is_empty() };
    match first {
        Token::Char(c) => line.first() == Some(&c) && match_here(rest, &line[1..], numbers),
        Token::Any => (0..=line.len()).any(|skip| match_here(rest, &line[skip..], numbers)),
        Token::Number => {
            let sign = usize::from(line.first() == Some(&'-'));
            let digits = line[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
            // Longest first, so `#` followed by `*` takes the whole number.
            for len in (1..=digits).rev() {
                let text: String = line[..sign + len].iter().collect();
                let Ok(value) = text.parse::<i64>() else { continue };
                numbers.push(value);
                if match_here(rest, &line[sign + len..], numbers) {
                    return true;
                }
                numbers.pop();
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_lines_and_capture_numbers() {
        let p = Pattern::new("acc=# bar=12").unwrap();
        assert_eq!(p.captures("acc=-35 bar=12"), Some(vec![-35]));
        assert!(!p.matches("acc=35 bar=123"));
        assert!(!p.matches("xacc=35 bar=12"));
        assert!(!p.matches("acc= bar=12"));
        let p = Pattern::new("tick *: counter=#*").unwrap();
        assert_eq!(p.number("tick v2: counter=1041 (fast)"), Some(1041));
        assert_eq!(p.number("tick v2: counter=1041"), Some(1041));
        assert_eq!(p.number("tick: counter=7"), None);
        assert_eq!(Pattern::new("#-#").unwrap().captures("3-4"), Some(vec![3, 4]));
        assert!(Pattern::new("").is_err());
    }

    #[test]
    fn parses_a_scenario() {
        let text = "\
# the seed
aslr both
flags -O1 -DX=2
line acc=5 bar=5

step 01 bar grows
moved _bar grew
untouched _addToBar
line acc=# bar=7
never acc=# bar=5

step 02
send reset counter
error link undefined symbol _nope
process exited abnormal exit
";
        let s = parse("seed", Path::new("/x/seed"), text).unwrap();
        assert_eq!(s.aslr, [true, false]);
        assert_eq!(s.flags, ["-O1", "-DX=2"]);
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[0].name, "start");
        assert!(s.steps[0].command.is_none());
        assert!(matches!(&s.steps[0].output[..], [OutputCheck::Line(p)] if p.matches("acc=5 bar=5")));
        let one = &s.steps[1];
        assert_eq!((one.name.as_str(), one.title.as_str()), ("01", "bar grows"));
        assert_eq!(one.command, Some(Request { cmd: "hot_update".into(), arg: None }));
        assert_eq!(
            one.report,
            [
                ReportCheck::In { list: List::Moved, symbol: "_bar".into(), reason: Some("grew".into()) },
                ReportCheck::Untouched("_addToBar".into()),
            ]
        );
        assert_eq!(one.never.len(), 1);
        let two = &s.steps[2];
        assert_eq!(two.command.as_ref().unwrap().to_json(7), r#"{"id":7,"cmd":"reset","name":"counter"}"#);
        assert_eq!(two.error, Some(("link".into(), Some("undefined symbol _nope".into()))));
        assert_eq!(two.process, Some(ProcessCheck::Exited(Some("abnormal exit".into()))));
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, needle) in [
            ("step 01\nmovd _bar\n", 2, "unknown directive `movd`"),
            ("aslr sometimes\n", 1, "on, off or both"),
            ("step 01\nstep 01\n", 2, "defined twice"),
            ("step 01\ncounts n=*\n", 2, "exactly one `#`"),
            ("delete x.c\n", 1, "start block"),
            ("step 01\nmoved\n", 2, "one symbol name"),
            ("step 01\nsend reset\n", 2, "a name for reset"),
            ("step ../x\n", 1, "plain name"),
        ] {
            let (at, message) = parse("s", Path::new("s"), text).unwrap_err();
            assert_eq!(at, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
    }
}
