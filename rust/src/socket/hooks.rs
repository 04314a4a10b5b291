//! Test hooks for the test suites: put descriptors on the fill and tx rings without
//! any check, to provoke the kernel's invalid-descriptor counters, and lose tx wakeups
//! on purpose, to show that a sender recovers. Not part of the crate's API.

use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "python")]
use super::{errors, XskSocket};
#[cfg(feature = "python")]
use crate::error::Result;
#[cfg(feature = "python")]
use crate::sys;

/// While set, every socket of the process reads the kernel's need_wakeup flag on its
/// tx ring as clear, so no ordinary tx kick is made: the situation of a lost wakeup.
static TX_WAKEUPS_HIDDEN: AtomicBool = AtomicBool::new(false);

/// For tests only: makes every socket of the process skip the tx kicks the kernel
/// asks for (`true`), or makes them again (`false`). Only the re-kick of a stalled
/// sender (see [`REKICK_AFTER`](super::REKICK_AFTER)) still reaches the kernel.
pub fn hide_tx_wakeups(hidden: bool) {
    TX_WAKEUPS_HIDDEN.store(hidden, Ordering::Relaxed);
}

#[inline]
pub(crate) fn tx_wakeups_hidden() -> bool {
    TX_WAKEUPS_HIDDEN.load(Ordering::Relaxed)
}

#[cfg(feature = "python")]
impl XskSocket {
    /// Puts `addr` on the fill ring without any check (taking it out of the pool if it
    /// is there). Only for tests that provoke the kernel's invalid-descriptor counters.
    pub(crate) fn post_fill_unchecked(&mut self, addr: u64) -> Result<()> {
        if self.take_free_frame(addr)? {
            self.ledger.posted_fill();
        }
        let mut r = self.rings.fill.reserve(1);
        if !r.is_empty() {
            r.write(0, addr);
            r.submit_all();
        }
        Ok(())
    }

    /// Puts a tx descriptor on the ring without any check and kicks the kernel. Only
    /// for tests that provoke the kernel's invalid-descriptor counters.
    pub(crate) fn post_tx_unchecked(&mut self, addr: u64, len: u32) -> Result<()> {
        self.tx_ring()?;
        // The kernel hands even invalid descriptors back on the completion ring: the
        // frame must be one we own, taken out of the pool, so it is never in two places.
        if self.take_free_frame(addr)? {
            self.ledger.posted_tx(addr);
        }
        {
            let tx = self.tx_ring()?;
            let mut r = tx.reserve(1);
            if !r.is_empty() {
                r.write(
                    0,
                    sys::XdpDesc {
                        addr,
                        len,
                        options: 0,
                    },
                );
                r.submit_all();
            }
        }
        // Answered as the real kick is (a down link is a state, seen by the next send).
        let answer = sys::xsk::kick_tx(self.fd());
        self.watch.settle_kick(answer, "sending")
    }

    /// For the unchecked test hooks: an address outside this socket's frames is fine
    /// (the kernel rejects it); one inside must be a free frame, taken out of the pool.
    fn take_free_frame(&mut self, addr: u64) -> Result<bool> {
        self.ledger.take_free(addr).map_err(errors::frame_not_free)
    }
}
