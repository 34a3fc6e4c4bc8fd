//! io_uring `IORING_OP_POLL_ADD` on an eventfd, through the `io-uring` crate.

use io_uring::{opcode, types, IoUring};

use crate::linux_aio::{drain, signal};

/// A ring and an eventfd to poll.
pub struct Uring {
    ring: IoUring,
    eventfd: i32,
}

impl Uring {
    /// A ring of `entries` submission entries, probed with one poll round
    /// trip (kernels before 5.1, and some sandboxes, refuse io_uring).
    pub fn new(entries: u32) -> Result<Self, String> {
        let ring = IoUring::new(entries).map_err(|error| format!("io_uring_setup: {error}"))?;
        // SAFETY: eventfd takes no pointers.
        let eventfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if eventfd < 0 {
            return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
        }
        let mut uring = Uring { ring, eventfd };
        uring.round_trip()?;
        Ok(uring)
    }

    fn push_poll(&mut self, user_data: u64) -> Result<(), String> {
        let entry = opcode::PollAdd::new(types::Fd(self.eventfd), libc::POLLIN as u32)
            .build()
            .user_data(user_data);
        // SAFETY: a poll request refers to no buffer; the fd outlives the
        // ring's use of it (both are closed in `drop`, the ring last).
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| "io_uring: submission queue full".to_string())
    }

    fn reap(&mut self, want: usize) -> Result<(), String> {
        let mut got = 0;
        while got < want {
            if got > 0 || self.ring.completion().is_empty() {
                self.ring
                    .submit_and_wait(want - got)
                    .map_err(|error| format!("io_uring_enter: {error}"))?;
            }
            got += self.ring.completion().count();
        }
        Ok(())
    }

    /// Submit a poll, make the eventfd readable, wait for the completion.
    pub fn round_trip(&mut self) -> Result<(), String> {
        self.push_poll(1)?;
        self.ring
            .submit()
            .map_err(|error| format!("io_uring_enter: {error}"))?;
        signal(self.eventfd);
        self.reap(1)?;
        drain(self.eventfd);
        Ok(())
    }

    /// Submit a poll, then a poll-remove of it; wait for both completions.
    pub fn cancel(&mut self) -> Result<(), String> {
        self.push_poll(1)?;
        self.ring
            .submit()
            .map_err(|error| format!("io_uring_enter: {error}"))?;
        let remove = opcode::PollRemove::new(1).build().user_data(2);
        // SAFETY: a poll-remove refers to no buffer.
        unsafe { self.ring.submission().push(&remove) }
            .map_err(|_| "io_uring: submission queue full".to_string())?;
        self.reap(2)
    }

    /// `count` polls on the eventfd, one wakeup, every completion.
    pub fn fan_out(&mut self, count: usize) -> Result<(), String> {
        for user_data in 0..count as u64 {
            self.push_poll(user_data)?;
        }
        self.ring
            .submit()
            .map_err(|error| format!("io_uring_enter: {error}"))?;
        signal(self.eventfd);
        self.reap(count)?;
        drain(self.eventfd);
        Ok(())
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // SAFETY: the eventfd was opened by `new` and is closed once; a
        // pending poll on it completes or is torn down with the ring.
        unsafe { libc::close(self.eventfd) };
    }
}
