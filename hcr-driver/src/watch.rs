//! `--watch`: turn file saves into updates, debounced.
//!
//! Editors save in bursts (write a temporary file, rename it over the original, touch metadata), and a save of
//! several files arrives as many events. The watcher therefore watches the *directories* of the files it cares
//! about (a rename over a watched file would otherwise end the watch on the old inode), keeps only events for
//! those files, and reports a batch once no relevant event has arrived for the debounce interval.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

/// A debounced watcher over a set of files.
#[derive(Debug)]
pub struct Watcher {
    watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Watcher {
    /// Starts watching `files` (sources and the headers they include).
    pub fn new(files: &[PathBuf]) -> notify::Result<Watcher> {
        let (tx, events) = mpsc::channel();
        let watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the Watcher was dropped; nothing is left to tell.
            let _ = tx.send(event);
        })?;
        let mut this = Watcher { watcher, events, files: BTreeSet::new(), dirs: BTreeSet::new() };
        this.set_files(files)?;
        Ok(this)
    }

    /// Replaces the set of watched files (after an update changed which headers are included).
    pub fn set_files(&mut self, files: &[PathBuf]) -> notify::Result<()> {
        let files: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let dirs: BTreeSet<PathBuf> =
            files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        for gone in self.dirs.difference(&dirs) {
            // A directory that was deleted is no longer watched anyway.
            let _ = self.watcher.unwatch(gone);
        }
        for new in dirs.difference(&self.dirs) {
            self.watcher.watch(new, RecursiveMode::NonRecursive)?;
        }
        self.files = files;
        self.dirs = dirs;
        Ok(())
    }

    /// Waits up to `timeout` for a change to a watched file, then keeps collecting until `debounce` passes with
    /// no further relevant event. Returns the changed files, or `None` if nothing changed before the timeout.
    pub fn wait(&self, debounce: Duration, timeout: Duration) -> notify::Result<Option<BTreeSet<PathBuf>>> {
        let mut changed = BTreeSet::new();
        let deadline = Instant::now() + timeout;
        let mut quiet_until: Option<Instant> = None;
        loop {
            let until = quiet_until.unwrap_or(deadline);
            let wait = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(wait) {
                Ok(event) => {
                    let event = event?;
                    if !is_content_change(&event.kind) {
                        continue;
                    }
                    let mut relevant =
                        event.paths.iter().map(|p| absolute(p)).filter(|p| self.files.contains(p)).peekable();
                    if relevant.peek().is_some() {
                        changed.extend(relevant);
                        quiet_until = Some(Instant::now() + debounce);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Ok((!changed.is_empty()).then_some(changed));
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

/// Creations, writes and renames change what the compiler would read; reads and metadata changes do not.
fn is_content_change(kind: &notify::EventKind) -> bool {
    use notify::event::{EventKind, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        _ => false,
    }
}

/// The path made absolute and, where it exists, canonical, so that event paths and watched paths compare equal.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    // A file that was just removed cannot be canonicalized; its directory usually can.
    match (path.parent().and_then(|d| d.canonicalize().ok()), path.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn a_save_is_reported_once_and_unrelated_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.c");
        let header = dir.path().join("config.h");
        fs::write(&main, "int main(void) { return 0; }\n").unwrap();
        fs::write(&header, "#define N 1\n").unwrap();
        let watcher = Watcher::new(&[main.clone(), header.clone()]).unwrap();

        fs::write(dir.path().join("notes.txt"), "not a source").unwrap();
        fs::write(&main, "int main(void) { return 1; }\n").unwrap();
        fs::write(&main, "int main(void) { return 2; }\n").unwrap();

        let changed = watcher.wait(DEBOUNCE, TIMEOUT).unwrap().expect("the save is seen");
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), [main.canonicalize().unwrap()]);
        assert_eq!(watcher.wait(DEBOUNCE, Duration::from_millis(300)).unwrap(), None, "one batch per burst");
    }

    #[test]
    fn an_editor_style_rename_over_the_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.c");
        fs::write(&main, "int x;\n").unwrap();
        let watcher = Watcher::new(std::slice::from_ref(&main)).unwrap();

        let temp = dir.path().join(".main.c.swp");
        fs::write(&temp, "int y;\n").unwrap();
        fs::rename(&temp, &main).unwrap();

        let changed = watcher.wait(DEBOUNCE, TIMEOUT).unwrap().expect("the rename is seen");
        assert!(changed.contains(&main.canonicalize().unwrap()));
    }

    #[test]
    fn changing_the_file_set_follows_new_headers() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("include");
        fs::create_dir(&sub).unwrap();
        let main = dir.path().join("main.c");
        let header = sub.join("new.h");
        fs::write(&main, "").unwrap();
        fs::write(&header, "").unwrap();
        let mut watcher = Watcher::new(std::slice::from_ref(&main)).unwrap();

        watcher.set_files(&[main.clone(), header.clone()]).unwrap();
        fs::write(&header, "#define NEW 1\n").unwrap();

        let changed = watcher.wait(DEBOUNCE, TIMEOUT).unwrap().expect("the header is watched");
        assert!(changed.contains(&header.canonicalize().unwrap()));
    }
}
