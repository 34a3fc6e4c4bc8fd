//! Linux aio `IOCB_CMD_POLL` through raw system calls (libc has no wrappers
//! for the aio syscalls, and the kernel's ABI structs are declared here from
//! `include/uapi/linux/aio_abi.h`).

use std::io;
use std::ptr;

/// `IOCB_CMD_POLL` from `aio_abi.h` (Linux 4.18+).
const IOCB_CMD_POLL: u16 = 5;

/// `struct iocb` from `aio_abi.h` (little-endian field order).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Iocb {
    aio_data: u64,
    aio_key: u32,
    aio_rw_flags: i32,
    aio_lio_opcode: u16,
    aio_reqprio: i16,
    aio_fildes: u32,
    aio_buf: u64,
    aio_nbytes: u64,
    aio_offset: i64,
    aio_reserved2: u64,
    aio_flags: u32,
    aio_resfd: u32,
}

impl Iocb {
    /// A one-shot poll request for `events` (poll(2) bits) on `fd`.
    pub fn poll(fd: i32, events: i16, user_data: u64) -> Self {
        Iocb {
            aio_data: user_data,
            aio_lio_opcode: IOCB_CMD_POLL,
            aio_fildes: fd as u32,
            aio_buf: events as u16 as u64,
            ..Iocb::default()
        }
    }
}

/// `struct io_event` from `aio_abi.h`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct IoEvent {
    /// The request's `aio_data`.
    pub data: u64,
    /// The request's address.
    pub obj: u64,
    /// The result: the ready poll mask.
    pub res: i64,
    /// Unused for poll.
    pub res2: i64,
}

fn check(result: libc::c_long, what: &str) -> Result<libc::c_long, String> {
    if result < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(result)
    }
}

/// An aio context (`io_setup`) and an eventfd to poll.
pub struct Aio {
    context: libc::c_ulong,
    /// The eventfd the requests poll.
    pub eventfd: i32,
}

impl Aio {
    /// A context with room for `events` requests, and a non-blocking eventfd.
    pub fn new(events: u32) -> Result<Self, String> {
        let mut context: libc::c_ulong = 0;
        check(
            // SAFETY: io_setup writes the new context id to the pointer we
            // pass, which points at a live `c_ulong`.
            unsafe { libc::syscall(libc::SYS_io_setup, events as libc::c_long, &mut context) },
            "io_setup",
        )?;
        // SAFETY: eventfd takes no pointers.
        let eventfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if eventfd < 0 {
            let error = format!("eventfd: {}", io::Error::last_os_error());
            // SAFETY: `context` came from a successful io_setup.
            unsafe { libc::syscall(libc::SYS_io_destroy, context) };
            return Err(error);
        }
        let aio = Aio { context, eventfd };
        // Probe that poll requests are accepted (kernels before 4.18 and
        // some sandboxes refuse them).
        let mut probe = Iocb::poll(eventfd, libc::POLLIN, 0);
        aio.submit(&mut [&mut probe])?;
        aio.signal();
        let mut events = [IoEvent::default(); 1];
        aio.get_events(1, &mut events)?;
        aio.drain();
        Ok(aio)
    }

    /// `io_submit` of every request in `iocbs`.
    pub fn submit(&self, iocbs: &mut [&mut Iocb]) -> Result<(), String> {
        // SAFETY: `iocbs` is an array of pointers to live iocbs, which the
        // kernel reads during the call; the poll requests keep no pointer to
        // them afterwards (only their address, as `obj`, for io_cancel).
        let submitted = check(
            unsafe {
                libc::syscall(
                    libc::SYS_io_submit,
                    self.context,
                    iocbs.len() as libc::c_long,
                    iocbs.as_mut_ptr(),
                )
            },
            "io_submit",
        )?;
        if submitted as usize == iocbs.len() {
            Ok(())
        } else {
            Err(format!("io_submit took {submitted} of {}", iocbs.len()))
        }
    }

    /// `io_cancel` of `iocb`: for a poll request the kernel answers
    /// `EINPROGRESS` and queues the cancelled completion.
    pub fn cancel(&self, iocb: &mut Iocb) -> Result<(), String> {
        let mut unused = IoEvent::default();
        // SAFETY: `iocb` is the live request submitted earlier; `unused` is a
        // live io_event the kernel may write.
        let result = unsafe {
            libc::syscall(
                libc::SYS_io_cancel,
                self.context,
                iocb as *mut Iocb,
                &mut unused as *mut IoEvent,
            )
        };
        if result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS) {
            Ok(())
        } else {
            Err(format!("io_cancel: {}", io::Error::last_os_error()))
        }
    }

    /// A blocking `io_getevents` for at least `min` completions.
    pub fn get_events(&self, min: usize, events: &mut [IoEvent]) -> Result<usize, String> {
        // SAFETY: `events` is a live buffer of `events.len()` io_events; a
        // null timeout waits without limit.
        let got = check(
            unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.context,
                    min as libc::c_long,
                    events.len() as libc::c_long,
                    events.as_mut_ptr(),
                    ptr::null_mut::<libc::timespec>(),
                )
            },
            "io_getevents",
        )?;
        Ok(got as usize)
    }

    /// Makes the eventfd readable (a `write` of 1).
    pub fn signal(&self) {
        signal(self.eventfd);
    }

    /// Makes the eventfd unreadable again (a `read`).
    pub fn drain(&self) {
        drain(self.eventfd);
    }
}

/// A `write` of 1 to an eventfd.
pub fn signal(eventfd: i32) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let written = unsafe { libc::write(eventfd, (&one as *const u64).cast(), 8) };
    debug_assert_eq!(written, 8);
}

/// A `read` of an eventfd's counter (which resets it).
pub fn drain(eventfd: i32) {
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let read = unsafe { libc::read(eventfd, (&mut value as *mut u64).cast(), 8) };
    debug_assert_eq!(read, 8);
}

impl Drop for Aio {
    fn drop(&mut self) {
        // SAFETY: both were created by `new` and are closed once, here.
        unsafe {
            libc::syscall(libc::SYS_io_destroy, self.context);
            libc::close(self.eventfd);
        }
    }
}
