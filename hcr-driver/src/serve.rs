//! The `hcr run` loop: commands from the terminal, from file changes and from the control socket, all served
//! one at a time by one thread that owns the session, so two updates never overlap.
//!
//! The program's own output goes to hcr's stdout; hcr's messages go to stderr, so a harness reading stdout sees
//! exactly what the program printed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::protocol::{self, Command, ErrorKind, Line, RequestError};
use crate::repl::{self, ReplInput};
use crate::report::UpdateReport;
use crate::session::{Launcher, Session, SessionError};
use crate::watch::Watcher;

/// Where a command came from, and so where its answer goes.
enum From {
    Terminal,
    Watch(BTreeSet<PathBuf>),
    /// The serving thread writes the response itself, so that even `exit`'s answer is written before hcr ends;
    /// `done` then lets the connection read its next request.
    Socket {
        id: u64,
        stream: UnixStream,
        done: Sender<()>,
    },
}

enum Event {
    Command(Command, From),
    /// The terminal closed its input.
    TerminalClosed,
}

/// How `hcr run` serves.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The control socket's path.
    pub listen: Option<PathBuf>,
    pub watch: bool,
    /// Print the full report table after each update.
    pub verbose: bool,
}

/// Serves commands until `exit` (or, without a control socket, until the terminal closes).
pub fn serve<L: Launcher>(session: &mut Session<L>, options: &ServeOptions) -> anyhow::Result<()> {
    let (events, inbox) = channel::<Event>();
    spawn_terminal(events.clone());
    if let Some(path) = &options.listen {
        spawn_socket(path, events.clone())?;
        eprintln!("hcr: listening on unix:{}", path.display());
    }
    let watched = if options.watch {
        Some(spawn_watch(session.project().watched_files(), events.clone())?)
    } else {
        None
    };
    drop(events);
    let listening = options.listen.is_some();
    loop {
        let event = match inbox.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = session.newly_ended() {
                    eprintln!("hcr: the program ended: {status}");
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let (command, from) = match event {
            Event::Command(command, from) => (command, from),
            Event::TerminalClosed if listening => continue,
            Event::TerminalClosed => break,
        };
        if let From::Watch(files) = &from {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("hcr: changed: {}", names.join(", "));
        }
        let exit = command == Command::Exit;
        let result = execute(session, &command);
        match (&from, &result) {
            (From::Socket { id, stream, done }, result) => {
                let line = match result {
                    Ok(outcome) => protocol::ok_response(*id, outcome.to_json()),
                    Err(e) => protocol::error_response(&RequestError {
                        id: Some(*id),
                        kind: e.kind,
                        message: e.message.clone(),
                    }),
                };
                // A client that went away has no one to tell.
                let _ = writeln!(&*stream, "{line}");
                let _ = done.send(());
                // The terminal shows what updates did, whoever asked; answers to queries go to the asker only.
                if matches!(command, Command::Update | Command::HotUpdate | Command::UpdateAndRun)
                    || result.is_err()
                {
                    print_outcome(&command, result, options.verbose);
                }
            }
            _ => print_outcome(&command, &result, options.verbose),
        }
        if let Some(files) = &watched
            && result.is_ok()
        {
            // An update may have changed which headers a translation unit includes.
            let _ = files.send(session.project().watched_files());
        }
        if exit {
            break;
        }
    }
    session.stop();
    if let Some(path) = &options.listen {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// What a command produced.
enum Outcome {
    Report(Box<UpdateReport>),
    Value(Value),
}

impl Outcome {
    fn to_json(&self) -> Value {
        match self {
            Outcome::Report(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            Outcome::Value(v) => v.clone(),
        }
    }
}

fn execute<L: Launcher>(session: &mut Session<L>, command: &Command) -> Result<Outcome, SessionError> {
    let report = |r: UpdateReport| Outcome::Report(Box::new(r));
    match command {
        Command::Status => Ok(Outcome::Value(session.status())),
        Command::Update => session.update().map(report),
        Command::Run => session.run().map(|()| Outcome::Value(json!({"launched": true}))),
        Command::UpdateAndRun => session.update_and_run().map(report),
        Command::HotUpdate => session.hot_update().map(report),
        Command::Reset { name } => session.reset(name).map(|()| Outcome::Value(json!({"reset": name}))),
        Command::Layout { symbol } => {
            Ok(Outcome::Value(json!({"layout": session.layout(symbol.as_deref())})))
        }
        Command::Exit => Ok(Outcome::Value(json!({"exiting": true}))),
    }
}

fn print_outcome(command: &Command, result: &Result<Outcome, SessionError>, verbose: bool) {
    match result {
        Err(e) => eprintln!("hcr: {} error: {e}", kind_name(e.kind)),
        Ok(Outcome::Report(report)) => {
            eprintln!("hcr: {}", report.one_line());
            if verbose {
                eprint!("{}", report.table());
            }
        }
        Ok(Outcome::Value(value)) => match command {
            Command::Layout { .. } => eprint!("{}", value["layout"].as_str().unwrap_or_default()),
            Command::Run => eprintln!("hcr: launched"),
            Command::Reset { name } => eprintln!("hcr: {name} reset to its initializer"),
            Command::Exit => {}
            _ => eprintln!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        },
    }
}

fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn spawn_terminal(events: Sender<Event>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut last: Option<Command> = None;
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            match repl::parse_line(&line) {
                Ok(ReplInput::Command(command)) => {
                    last = Some(command.clone());
                    if events.send(Event::Command(command, From::Terminal)).is_err() {
                        return;
                    }
                }
                Ok(ReplInput::Repeat) => {
                    if let Some(command) = last.clone()
                        && events.send(Event::Command(command, From::Terminal)).is_err()
                    {
                        return;
                    }
                }
                Ok(ReplInput::Help) => eprintln!("{}", repl::HELP),
                Err(message) => eprintln!("hcr: {message} (type `help`)"),
            }
        }
        let _ = events.send(Event::TerminalClosed);
    });
}

fn spawn_socket(path: &std::path::Path, events: Sender<Event>) -> anyhow::Result<()> {
    if path.exists() {
        // A socket left by an hcr that did not exit cleanly; a live one would refuse the connection below.
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by another hcr", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let events = events.clone();
            std::thread::spawn(move || connection(stream, &events));
        }
    });
    Ok(())
}

/// One client: the greeting, then one response per request, in order (the serving thread writes each response
/// and says when it has).
fn connection(stream: UnixStream, events: &Sender<Event>) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    if writeln!(writer, "{}", protocol::greeting()).is_err() {
        return;
    }
    let (done, written): (Sender<()>, Receiver<()>) = channel();
    loop {
        let line = match protocol::read_line_bounded(&mut reader, protocol::MAX_REQUEST_BYTES) {
            Ok(Line::Line(line)) => line,
            Ok(Line::TooLong { len }) => {
                let error = RequestError {
                    id: None,
                    kind: ErrorKind::TooLong,
                    message: format!(
                        "a request of {len} bytes is longer than {} bytes",
                        protocol::MAX_REQUEST_BYTES
                    ),
                };
                if writeln!(writer, "{}", protocol::error_response(&error)).is_err() {
                    return;
                }
                continue;
            }
            Ok(Line::Eof) | Err(_) => return,
        };
        match protocol::parse_request(&line) {
            Ok(request) => {
                let Ok(stream) = writer.try_clone() else { return };
                let from = From::Socket { id: request.id, stream, done: done.clone() };
                if events.send(Event::Command(request.command, from)).is_err() || written.recv().is_err() {
                    return;
                }
            }
            Err(error) => {
                if writeln!(writer, "{}", protocol::error_response(&error)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Watches `files`, sending a hot update for each debounced change; a new file list sent on the returned channel
/// replaces the watched set.
fn spawn_watch(files: Vec<PathBuf>, events: Sender<Event>) -> anyhow::Result<Sender<Vec<PathBuf>>> {
    let mut watcher = Watcher::new(&files)?;
    let (lists, new_lists) = channel::<Vec<PathBuf>>();
    std::thread::spawn(move || {
        loop {
            if let Some(files) = new_lists.try_iter().last()
                && let Err(e) = watcher.set_files(&files)
            {
                eprintln!("hcr: watching files: {e}");
            }
            match watcher.wait(Duration::from_millis(100), Duration::from_millis(250)) {
                Ok(Some(changed)) => {
                    if events.send(Event::Command(Command::HotUpdate, From::Watch(changed))).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("hcr: watching files: {e}");
                    return;
                }
            }
        }
    });
    Ok(lists)
}
