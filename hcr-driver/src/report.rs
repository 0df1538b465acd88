//! The report every update gives (contract item 9): what changed in the image, what happened to globals, what
//! was written where, and how long each stage took.
//!
//! It is printed as one line after each hot update (`--verbose` prints the table) and returned in full, as JSON,
//! over the control socket.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// A function body that moved to new space, with its old and new link-time addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub symbol: String,
    pub from: u64,
    pub to: u64,
    /// Why it moved: it outgrew its padding, or a thread was executing or could return into it.
    pub reason: MoveReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveReason {
    Grew,
    Live,
}

/// A global whose storage was replaced, losing its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalReset {
    pub symbol: String,
    pub reason: String,
}

/// Bytes written to one destination (the process or the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Writes {
    pub writes: u32,
    pub bytes: u64,
    /// Distinct 16 KiB pages touched.
    pub pages: u32,
}

/// Time spent in each stage of an update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    #[serde(serialize_with = "micros")]
    pub compile: Duration,
    #[serde(serialize_with = "micros")]
    pub parse: Duration,
    #[serde(serialize_with = "micros")]
    pub diff: Duration,
    #[serde(serialize_with = "micros")]
    pub relocate: Duration,
    #[serde(serialize_with = "micros")]
    pub write_file: Duration,
    #[serde(serialize_with = "micros")]
    pub patch_process: Duration,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.compile + self.parse + self.diff + self.relocate + self.write_file + self.patch_process
    }

    /// The linker's share: parse, diff and relocate.
    pub fn link(&self) -> Duration {
        self.parse + self.diff + self.relocate
    }
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// Everything one update did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateReport {
    /// Translation units recompiled.
    pub recompiled: Vec<String>,
    pub added: Vec<String>,
    pub changed_in_place: Vec<String>,
    pub moved: Vec<Moved>,
    pub removed: Vec<String>,
    /// Globals whose initializer changed but whose running value was kept (`reset NAME` re-applies it).
    pub globals_kept: Vec<String>,
    pub globals_reset: Vec<GlobalReset>,
    /// Imports first used by this update, resolved in the running process.
    pub new_imports: Vec<String>,
    /// Target cells and GOT cells stored.
    pub cells_rewritten: u32,
    /// `None` when no process was patched (`update` rather than `hot-update`).
    pub process: Option<Writes>,
    pub file: Writes,
    /// Serialized in microseconds.
    pub timings: Timings,
}

impl UpdateReport {
    /// Whether the update changed nothing at all.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed_in_place.is_empty()
            && self.moved.is_empty()
            && self.removed.is_empty()
            && self.globals_reset.is_empty()
    }

    /// One line, printed after every hot update.
    pub fn one_line(&self) -> String {
        if self.is_empty() {
            return format!("no changes ({})", ms(self.timings.total()));
        }
        let mut parts = Vec::new();
        let mut count = |n: usize, what: &str, names: Vec<&str>| {
            if n > 0 {
                parts.push(format!("{n} {what} ({})", abbreviate(&names)));
            }
        };
        count(
            self.changed_in_place.len(),
            "changed",
            self.changed_in_place.iter().map(String::as_str).collect(),
        );
        count(self.moved.len(), "moved", self.moved.iter().map(|m| m.symbol.as_str()).collect());
        count(self.added.len(), "added", self.added.iter().map(String::as_str).collect());
        count(self.removed.len(), "removed", self.removed.iter().map(String::as_str).collect());
        count(
            self.globals_reset.len(),
            "global reset",
            self.globals_reset.iter().map(|g| g.symbol.as_str()).collect(),
        );
        count(
            self.globals_kept.len(),
            "initializer kept",
            self.globals_kept.iter().map(String::as_str).collect(),
        );
        let written = match &self.process {
            Some(w) => format!("{} B in {} pages to the process", w.bytes, w.pages),
            None => "process not patched".to_string(),
        };
        format!("{}; {written}; {}", parts.join(", "), ms(self.timings.total()))
    }

    /// The full table, for `--verbose` and `status`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut list = |label: &str, names: Vec<String>| {
            if !names.is_empty() {
                let _ = writeln!(out, "{label:<18}{}", names.join(", "));
            }
        };
        list("recompiled", self.recompiled.clone());
        list("added", self.added.clone());
        list("changed in place", self.changed_in_place.clone());
        list(
            "moved",
            self.moved
                .iter()
                .map(|m| {
                    let why = match m.reason {
                        MoveReason::Grew => "grew",
                        MoveReason::Live => "live",
                    };
                    format!("{} {:#x} -> {:#x} ({why})", m.symbol, m.from, m.to)
                })
                .collect(),
        );
        list("removed", self.removed.clone());
        list("globals kept", self.globals_kept.clone());
        list(
            "globals reset",
            self.globals_reset.iter().map(|g| format!("{} ({})", g.symbol, g.reason)).collect(),
        );
        list("new imports", self.new_imports.clone());
        let _ = writeln!(out, "{:<18}{}", "cells rewritten", self.cells_rewritten);
        match &self.process {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "{:<18}{} writes, {} bytes, {} pages",
                    "process", w.writes, w.bytes, w.pages
                );
            }
            None => {
                let _ = writeln!(out, "{:<18}not patched", "process");
            }
        }
        let f = &self.file;
        let _ = writeln!(out, "{:<18}{} writes, {} bytes, {} pages", "file", f.writes, f.bytes, f.pages);
        let t = &self.timings;
        let _ = writeln!(
            out,
            "{:<18}compile {}, parse {}, diff {}, relocate {}, write file {}, patch process {}; total {}",
            "time",
            ms(t.compile),
            ms(t.parse),
            ms(t.diff),
            ms(t.relocate),
            ms(t.write_file),
            ms(t.patch_process),
            ms(t.total())
        );
        out
    }
}

/// Up to three names, then "+N more".
fn abbreviate(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut text = names.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        let _ = write!(text, " +{} more", names.len() - SHOWN);
    }
    text
}

/// Milliseconds with one decimal, or microseconds below a millisecond: the linker's stages take microseconds
/// and "0.0 ms" would hide them.
fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) && !d.is_zero() {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed scenario: `bar` grows past its padding and moves, `addToBar` is untouched.
    fn seed() -> UpdateReport {
        UpdateReport {
            recompiled: vec!["main.c".into()],
            moved: vec![Moved {
                symbol: "_bar".into(),
                from: 0x1_0000_4000,
                to: 0x1_0000_4180,
                reason: MoveReason::Grew,
            }],
            cells_rewritten: 1,
            process: Some(Writes { writes: 2, bytes: 216, pages: 2 }),
            file: Writes { writes: 3, bytes: 4312, pages: 3 },
            timings: Timings {
                compile: Duration::from_micros(21_400),
                parse: Duration::from_micros(90),
                diff: Duration::from_micros(12),
                relocate: Duration::from_micros(30),
                write_file: Duration::from_micros(410),
                patch_process: Duration::from_micros(150),
            },
            ..UpdateReport::default()
        }
    }

    #[test]
    fn one_line_names_what_changed_and_the_cost() {
        assert_eq!(seed().one_line(), "1 moved (_bar); 216 B in 2 pages to the process; 22.1 ms");
        let mut many = seed();
        many.changed_in_place = ["_a", "_b", "_c", "_d", "_e"].map(String::from).to_vec();
        many.process = None;
        assert_eq!(
            many.one_line(),
            "5 changed (_a, _b, _c +2 more), 1 moved (_bar); process not patched; 22.1 ms"
        );
        assert_eq!(UpdateReport::default().one_line(), "no changes (0.0 ms)");
    }

    #[test]
    fn table_lists_every_stage() {
        let mut report = seed();
        report.globals_kept = vec!["_counter".into()];
        report.globals_reset = vec![GlobalReset { symbol: "_grid".into(), reason: "size 64 -> 128".into() }];
        report.new_imports = vec!["_usleep".into()];
        insta::assert_snapshot!(report.table());
    }

    #[test]
    fn json_carries_timings_in_microseconds() {
        let value = serde_json::to_value(seed()).unwrap();
        assert_eq!(value["timings"]["compile"], 21_400);
        assert_eq!(value["moved"][0]["reason"], "grew");
        assert_eq!(value["process"]["bytes"], 216);
    }
}
