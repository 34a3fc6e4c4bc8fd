//! Scenario: bytes the host sends to the emulated UART arrive through the
//! UART0 receive interrupt; each wakes a poll request, and thread mode reads
//! what arrived. `cargo xtask test` feeds "aiopoll".
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Outcome};
use aiopoll_cortex_m::{reap_blocking, CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit};
use cortex_m_rt::entry;
use critical_section::Mutex;
use lm3s6965::interrupt;
use lm3s6965evb::{uart0, Interrupt};

/// How many bytes the run waits for.
const EXPECTED: usize = 7;

static RECEIVED: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 2, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
/// Bytes the interrupt handler has read, not yet taken by thread mode.
static BUFFER: Mutex<RefCell<([u8; 64], usize)>> = Mutex::new(RefCell::new(([0; 64], 0)));

#[interrupt]
fn UART0() {
    uart0::acknowledge();
    critical_section::with(|cs| {
        let mut buffer = BUFFER.borrow(cs).borrow_mut();
        while let Some(byte) = uart0::read_byte() {
            let (bytes, length) = &mut *buffer;
            if *length < bytes.len() {
                bytes[*length] = byte;
                *length += 1;
            }
        }
    });
    RECEIVED.raise(Events::IN);
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    enable(Interrupt::UART0, 0x40);
    enable(Interrupt::GPIOB, 0xE0);
    uart0::enable_receive_interrupt();

    let mut line = [0u8; EXPECTED];
    let mut have = 0;
    let mut requests = 0u64;
    let mut done = [Completion::EMPTY; 1];
    while have < EXPECTED {
        context.submit(&RECEIVED, Events::IN, requests).unwrap();
        requests += 1;
        reap_blocking(&context, &mut done);
        if done[0].outcome != Outcome::Ready(Events::IN) {
            exit(false);
        }
        // Take what arrived; clear readiness in the same critical section,
        // so a byte arriving after this is raised again.
        critical_section::with(|cs| {
            let mut buffer = BUFFER.borrow(cs).borrow_mut();
            let (bytes, length) = &mut *buffer;
            for &byte in &bytes[..*length] {
                if have < EXPECTED {
                    line[have] = byte;
                    have += 1;
                }
            }
            *length = 0;
            RECEIVED.clear(Events::IN);
        });
    }
    let text = core::str::from_utf8(&line).unwrap_or("(not UTF-8)");
    defmt::info!(
        "received {} bytes through the UART0 interrupt: {}",
        have,
        text
    );
    exit(text == "aiopoll")
}
