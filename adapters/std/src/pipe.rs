//! [`pipe`]: a bounded byte pipe with pipe(7) semantics.
//!
//! Its readiness is Linux's; its wakeups are a little more frequent. Every
//! read that takes bytes wakes the writers' queue (Linux wakes writers only
//! when a read frees a page of a full pipe), and a write that fails with
//! `WouldBlock` wakes nobody (Linux wakes the readers). A one-shot request
//! cannot tell: it completes only with readiness it asked for, and each of
//! these wakeups finds it ready or leaves it armed. A multishot request
//! posts on each wakeup its events are ready at, so it may post where a
//! Linux one would not (the io_uring differential test predicts each such
//! post).

use std::collections::VecDeque;
use std::sync::Arc;

use aiopoll::{Events, PollTable, Source};
use parking_lot::Mutex;

use crate::{AsSource, Lock, SharedSource, SourceError, WaitQueue};

/// Linux's default pipe capacity: 65,536 bytes.
pub const PIPE_CAPACITY: usize = 65_536;

/// Writes of at most this many bytes are atomic (pipe(7)'s `PIPE_BUF`):
/// all or nothing.
pub const PIPE_BUF: usize = 4_096;

/// A pipe of [`PIPE_CAPACITY`] bytes: `(read end, write end)`.
pub fn pipe() -> (PipeReader, PipeWriter) {
    pipe_with_capacity(PIPE_CAPACITY)
}

/// A pipe holding up to `capacity` bytes (at least 1).
///
/// The capacity is counted in bytes. Linux counts a pipe's capacity in
/// page-sized buffers (16 by default), merging small writes into the last
/// page, so the two agree exactly for transfers in whole pages (4,096
/// bytes); with odd-sized reads and writes Linux may report full a little
/// earlier than this pipe does.
pub fn pipe_with_capacity(capacity: usize) -> (PipeReader, PipeWriter) {
    let shared = Arc::new(PipeShared {
        state: Mutex::new(PipeState {
            buffer: VecDeque::new(),
            capacity: capacity.max(1),
            reader_open: true,
            writer_open: true,
        }),
        readers: WaitQueue::new(),
        writers: WaitQueue::new(),
    });
    (
        PipeReader {
            end: Arc::new(ReadEnd(shared.clone())),
        },
        PipeWriter {
            end: Arc::new(WriteEnd(shared)),
        },
    )
}

#[derive(Debug)]
struct PipeShared {
    state: Mutex<PipeState>,
    /// Requests on the read end.
    readers: WaitQueue,
    /// Requests on the write end.
    writers: WaitQueue,
}

#[derive(Debug)]
struct PipeState {
    buffer: VecDeque<u8>,
    capacity: usize,
    reader_open: bool,
    writer_open: bool,
}

impl PipeState {
    fn read_readiness(&self) -> Events {
        let mut ready = Events::empty();
        if !self.buffer.is_empty() {
            ready |= Events::IN | Events::RDNORM;
        }
        if !self.writer_open {
            ready |= Events::HUP;
        }
        ready
    }

    fn write_readiness(&self) -> Events {
        let mut ready = Events::empty();
        if self.buffer.len() < self.capacity {
            ready |= Events::OUT | Events::WRNORM;
        }
        if !self.reader_open {
            ready |= Events::ERR;
        }
        ready
    }
}

/// The read end of a [`pipe`]: ready `IN | RDNORM` while it holds data,
/// `HUP` once the write end is closed. Dropping it closes the read end:
/// the write end's waiters are woken to re-poll (and see `ERR`), and
/// requests pending on this end complete with
/// [`Outcome::SourceGone`](crate::Outcome::SourceGone).
#[derive(Debug)]
pub struct PipeReader {
    end: Arc<ReadEnd>,
}

/// The write end of a [`pipe`]: ready `OUT | WRNORM` while it has room,
/// `ERR` once the read end is closed. Dropping it closes the write end:
/// the read end's waiters are woken to re-poll (and see `HUP`), and
/// requests pending on this end complete with
/// [`Outcome::SourceGone`](crate::Outcome::SourceGone).
#[derive(Debug)]
pub struct PipeWriter {
    end: Arc<WriteEnd>,
}

/// The source behind a [`PipeReader`].
#[derive(Debug)]
struct ReadEnd(Arc<PipeShared>);

/// The source behind a [`PipeWriter`].
#[derive(Debug)]
struct WriteEnd(Arc<PipeShared>);

impl PipeReader {
    /// Reads up to `buf.len()` bytes without blocking and wakes the write
    /// end's waiters with key `OUT | WRNORM`. `Ok(0)` means end of file (the
    /// write end is closed and the pipe is empty), or an empty `buf`.
    ///
    /// # Errors
    /// [`SourceError::WouldBlock`]: the pipe is empty and the write end is
    /// open; poll for `IN` first.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let shared = &self.end.0;
        // Reading until `WouldBlock` ends on an empty pipe: that answer
        // needs only the pipe's lock (it changes nothing, wakes nobody).
        {
            let state = shared.state.lock();
            if state.buffer.is_empty() {
                return if state.writer_open {
                    Err(SourceError::WouldBlock)
                } else {
                    Ok(0)
                };
            }
        }
        let mut result = Ok(0);
        // The pipe changes under the writers' queue lock, where the key is
        // sent (it describes this state); the woken tasks run once every
        // lock is released (lock order: a queue's lock, then the pipe's).
        shared.writers.wake_with(|| {
            let mut state = shared.state.lock();
            if state.buffer.is_empty() {
                if state.writer_open {
                    result = Err(SourceError::WouldBlock);
                }
                return None;
            }
            let count = buf.len().min(state.buffer.len());
            for (place, byte) in buf.iter_mut().zip(state.buffer.drain(..count)) {
                *place = byte;
            }
            result = Ok(count);
            (count > 0).then_some(Events::OUT | Events::WRNORM)
        });
        result
    }

    /// How many bytes the pipe holds now (a snapshot).
    pub fn available(&self) -> usize {
        self.end.0.state.lock().buffer.len()
    }

    /// The events ready on the read end now.
    pub fn readiness(&self) -> Events {
        self.end.poll(&mut PollTable::readiness_only())
    }
}

impl PipeWriter {
    /// Writes from `buf` without blocking and wakes the read end's waiters
    /// with key `IN | RDNORM`. As pipe(7) says for non-blocking writes: at
    /// most [`PIPE_BUF`] bytes are written all or nothing; more may be
    /// written partially, as much as there is room for.
    ///
    /// # Errors
    /// - [`SourceError::BrokenPipe`]: the read end is closed.
    /// - [`SourceError::WouldBlock`]: no room (for all of `buf`, when it
    ///   is at most [`PIPE_BUF`] bytes); poll for `OUT` first.
    pub fn write(&self, buf: &[u8]) -> Result<usize, SourceError> {
        let shared = &self.end.0;
        let mut result = Ok(0);
        // Under the readers' queue lock, as in `PipeReader::read`.
        shared.readers.wake_with(|| {
            let mut state = shared.state.lock();
            if !state.reader_open {
                result = Err(SourceError::BrokenPipe);
                return None;
            }
            if buf.is_empty() {
                return None;
            }
            let room = state.capacity - state.buffer.len();
            if room == 0 || (buf.len() <= PIPE_BUF && room < buf.len()) {
                result = Err(SourceError::WouldBlock);
                return None;
            }
            let count = buf.len().min(room);
            state.buffer.extend(&buf[..count]);
            result = Ok(count);
            Some(Events::IN | Events::RDNORM)
        });
        result
    }

    /// How many bytes can be written now (a snapshot).
    pub fn room(&self) -> usize {
        let state = self.end.0.state.lock();
        state.capacity - state.buffer.len()
    }

    /// The events ready on the write end now.
    pub fn readiness(&self) -> Events {
        self.end.poll(&mut PollTable::readiness_only())
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let shared = &self.end.0;
        shared.writers.wake_with(|| {
            shared.state.lock().reader_open = false;
            // What the writers see changed in more than one way (ERR, and
            // maybe OUT): like Linux, an unkeyed wakeup (an empty key), so
            // they re-poll.
            Some(Events::empty())
        });
        shared.readers.close();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let shared = &self.end.0;
        shared.readers.wake_with(|| {
            shared.state.lock().writer_open = false;
            Some(Events::empty())
        });
        shared.writers.close();
    }
}

impl Source<Lock> for ReadEnd {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.0.readers);
        self.0.state.lock().read_readiness()
    }
}

impl Source<Lock> for WriteEnd {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.0.writers);
        self.0.state.lock().write_readiness()
    }
}

impl AsSource for PipeReader {
    fn as_source(&self) -> SharedSource {
        self.end.clone()
    }
}

impl AsSource for PipeWriter {
    fn as_source(&self) -> SharedSource {
        self.end.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::woken_unlocked::woken_with;

    #[test]
    fn a_task_woken_by_a_write_or_a_read_runs_with_the_pipe_s_lock_free() {
        let (reader, writer) = pipe_with_capacity(4);
        let shared = reader.end.0.clone();
        let written = woken_with(
            &reader,
            Events::IN,
            move || shared.state.try_lock().is_some(),
            || assert_eq!(writer.write(b"ab"), Ok(2)),
        );
        assert_eq!(written, Some(true), "a write's wakeup, the lock free");
        assert_eq!(writer.write(b"cd"), Ok(2));
        let shared = writer.end.0.clone();
        let read = woken_with(
            &writer,
            Events::OUT,
            move || shared.state.try_lock().is_some(),
            || assert_eq!(reader.read(&mut [0; 4]), Ok(4)),
        );
        assert_eq!(read, Some(true), "a read's wakeup, the lock free");
    }
}
