//! The guest's stdout and stderr: collected in full (for tests) and optionally passed on as they are written.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A callback that sees every write as it happens (on the emulator thread: keep it quick).
pub type Sink = std::sync::Arc<dyn Fn(Stream, &[u8]) + Send + Sync>;

#[derive(Debug, Default)]
struct Buffers {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Both streams of one process.
pub struct Output {
    buffers: Mutex<Buffers>,
    changed: Condvar,
    sink: Option<Sink>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("buffers", &self.buffers).field("sink", &self.sink.is_some()).finish()
    }
}

impl Output {
    /// Empty streams, passing writes to `sink` too when given.
    pub fn new(sink: Option<Sink>) -> Output {
        Output { buffers: Mutex::default(), changed: Condvar::new(), sink }
    }

    fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a write.
    pub fn write(&self, stream: Stream, bytes: &[u8]) {
        if let Some(sink) = &self.sink {
            sink(stream, bytes);
        }
        let mut buffers = self.lock();
        match stream {
            Stream::Stdout => buffers.stdout.extend_from_slice(bytes),
            Stream::Stderr => buffers.stderr.extend_from_slice(bytes),
        }
        self.changed.notify_all();
    }

    /// Everything written to `stream` so far.
    pub fn contents(&self, stream: Stream) -> Vec<u8> {
        let buffers = self.lock();
        match stream {
            Stream::Stdout => buffers.stdout.clone(),
            Stream::Stderr => buffers.stderr.clone(),
        }
    }

    /// Waits until `done` holds for `stream`'s contents, or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, stream: Stream, timeout: Duration, mut done: impl FnMut(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buffers = self.lock();
        loop {
            let bytes = match stream {
                Stream::Stdout => &buffers.stdout,
                Stream::Stderr => &buffers.stderr,
            };
            if done(bytes) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            buffers = self.changed.wait_timeout(buffers, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Wakes waiters (the process ended).
    pub fn notify(&self) {
        let _guard = self.lock();
        self.changed.notify_all();
    }
}
