//! Forwarding without a copy: a received frame goes straight onto the tx ring, and
//! comes back to the pool once the kernel has sent it.

#![allow(unsafe_code)]

use super::XskSocket;
use crate::error::{Error, ErrorKind, Result};

impl XskSocket {
    /// Sends up to `max` received packets back out of this socket without copying them:
    /// each rx frame goes straight onto the tx ring (with `swap_macs`, the Ethernet
    /// destination and source are exchanged first, as an L2 forwarder does) and comes
    /// back to the pool once sent. Never waits; returns how many were forwarded.
    pub fn forward_back(&mut self, max: u32, swap_macs: bool) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        self.complete();
        self.reclaim();
        let umem = std::sync::Arc::clone(self.claim.umem());
        let (Some(rx), Some(tx)) = (self.rings.rx.as_mut(), self.rings.tx.as_mut()) else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "forwarding needs both an rx and a tx ring (rx_size and tx_size > 0)",
            ));
        };
        let room = tx.free(max).min(max);
        let peek = rx.peek(room);
        let n = peek.len();
        let mut r = tx.reserve(n);
        let (mut k, mut bytes, mut invalid) = (0, 0u64, 0u64);
        for i in 0..n {
            let d = peek.read(i);
            if !self.ledger.owns(&d) {
                invalid += 1;
                continue;
            }
            if swap_macs && d.len >= 12 {
                // SAFETY: the kernel is done with this received frame and it is ours
                // until we put it on the tx ring below; 12 bytes fit (d.len >= 12 and
                // the descriptor lies inside one frame).
                let head = unsafe { umem.slice_mut(d.addr, 12) };
                let (dst, src) = head.split_at_mut(6);
                dst.swap_with_slice(src);
            }
            r.write(k, d);
            k += 1;
            bytes += d.len as u64;
        }
        r.submit(k);
        peek.release_all();
        self.ledger.received(n);
        self.ledger.forwarded(k);
        self.counters.invalid_rx_descs += invalid;
        self.counters.rx_packets += k as u64;
        self.counters.rx_bytes += bytes;
        self.counters.tx_packets += k as u64;
        self.counters.tx_bytes += bytes;
        if k > 0 {
            // Forwarded frames only come back (to be refilled) once sent: drain.
            if let Err(e) = self.drain_tx() {
                self.pending = Some(e);
            }
        }
        if self.refill() > 0 || n == 0 {
            self.kick_rx_if_needed()?;
        }
        Ok(k)
    }
}
