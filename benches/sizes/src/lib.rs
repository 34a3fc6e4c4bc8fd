//! The sizes of aiopoll's types on the target this crate is built for.
//!
//! `cargo xtask size` builds this crate for thumbv6m, thumbv7m and x86_64
//! and reads [`AIOPOLL_SIZES`] out of each object file (no program has to
//! run on the target): the bytes per request slot and per wait entry are
//! differences between contexts of 1 and 2 slots and of 1 and 2 wait
//! entries per slot.
#![no_std]

use aiopoll::{Completion, Context, Handle, QueuedOneShot, SpinLock, SpinLocks, WaitQueue};
use core::mem::size_of;

/// What each entry of [`AIOPOLL_SIZES`] is the size of, in order.
pub const NAMES: [&str; 10] = [
    "Context<N=1, W=1>",
    "Context<N=2, W=1>",
    "Context<N=1, W=2>",
    "Context<N=2, W=2>",
    "Context<N=16, W=2>",
    "WaitQueue",
    "Completion",
    "Handle",
    "Context<N=1, W=2, QueuedOneShot>",
    "Context<N=16, W=2, QueuedOneShot>",
];

/// The sizes, in bytes, of the types [`NAMES`] lists.
#[no_mangle]
#[used]
pub static AIOPOLL_SIZES: [u32; 10] = [
    size_of::<Context<'static, 1, SpinLocks, 1>>() as u32,
    size_of::<Context<'static, 2, SpinLocks, 1>>() as u32,
    size_of::<Context<'static, 1, SpinLocks, 2>>() as u32,
    size_of::<Context<'static, 2, SpinLocks, 2>>() as u32,
    size_of::<Context<'static, 16, SpinLocks, 2>>() as u32,
    size_of::<WaitQueue<SpinLock>>() as u32,
    size_of::<Completion>() as u32,
    size_of::<Handle>() as u32,
    size_of::<Context<'static, 1, SpinLocks, 2, (), QueuedOneShot>>() as u32,
    size_of::<Context<'static, 16, SpinLocks, 2, (), QueuedOneShot>>() as u32,
];
