//! Forwarding without a copy: a received frame goes straight onto a tx ring (this
//! socket's, or another's sharing the UMEM), and comes back to its socket's pool once
//! the kernel has sent it.
#![allow(unsafe_code)]

use std::sync::Arc;

use super::ledger::Ledger;
use super::{errors, packet_end, XskSocket, MAX_SEGMENTS};
use crate::csum;
use crate::error::{Error, ErrorKind, Result};
use crate::ring::{ConsumerRing, ProducerRing};
use crate::sys::XdpDesc;
use crate::umem::UmemArea;

/// What one forwarding call moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Packets put on the tx ring.
    pub packets: u32,
    pub bytes: u64,
    /// Partial checksums completed on the way.
    pub checksums: u32,
}

/// What [`move_frames`] did.
struct Moved {
    /// Descriptors taken off the rx ring.
    taken: u32,
    /// Of those, put on the tx ring (whole packets of the socket's frames).
    sent: u32,
    /// Packets put on the tx ring.
    packets: u32,
    bytes: u64,
    /// Descriptors that were not the socket's frames (their packets were dropped).
    invalid: u32,
}

/// Moves up to `max` packets from `rx` to `tx`, whole packets only (as many as `tx`
/// has room for; the rest stay in `rx`). A packet with a frame that is not one of
/// `ledger`'s is dropped (its own frames go back to the pool). `each` sees every
/// packet's descriptors before they go, and may change the packet in place.
fn move_frames(
    rx: &mut ConsumerRing<XdpDesc>,
    tx: &mut ProducerRing<XdpDesc>,
    ledger: &mut Ledger,
    max: u32,
    mut each: impl FnMut(&[XdpDesc]),
) -> Moved {
    // Room for `max` packets of one frame, or fewer larger ones.
    let want = max.saturating_add(MAX_SEGMENTS);
    let room = tx.free(want).min(want);
    let peek = rx.peek(room);
    let n = peek.len();
    let mut r = tx.reserve(n);
    let mut m = Moved {
        taken: 0,
        sent: 0,
        packets: 0,
        bytes: 0,
        invalid: 0,
    };
    let mut packet: Vec<XdpDesc> = Vec::new();
    while m.packets + m.invalid < max {
        let Some(end) = packet_end(&peek, m.taken) else {
            break;
        };
        packet.clear();
        packet.extend((m.taken..end).map(|i| peek.read(i)));
        m.taken = end;
        if !packet.iter().all(|d| ledger.owns(d)) {
            for d in &packet {
                if ledger.owns(d) {
                    ledger.hold(d);
                    ledger.give_back(d.addr);
                } else {
                    m.invalid += 1;
                }
            }
            continue;
        }
        each(&packet);
        for (k, d) in packet.iter().enumerate() {
            ledger.forwarded(d, k + 1 == packet.len());
            r.write(m.sent, *d);
            m.sent += 1;
            m.bytes += d.len as u64;
        }
        m.packets += 1;
    }
    r.submit(m.sent);
    peek.release(m.taken);
    m
}

/// The bytes of a received packet, to change in place before it is sent on.
///
/// # Safety
/// `d` must lie inside one frame of `umem` that the caller holds: taken off the rx
/// ring and not yet on a tx ring, so the kernel neither writes nor reads it.
#[allow(clippy::mut_from_ref)]
unsafe fn packet<'a>(umem: &'a UmemArea, d: &XdpDesc) -> &'a mut [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { umem.slice_mut(d.addr, d.len) }
}

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
        let umem = Arc::clone(self.claim.umem());
        let (Some(rx), Some(tx)) = (self.rings.rx.as_mut(), self.rings.tx.as_mut()) else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "forwarding needs both an rx and a tx ring (rx_size and tx_size > 0)",
            ));
        };
        let m = move_frames(rx, tx, &mut self.ledger, max, |descs| {
            let d = &descs[0];
            if swap_macs && d.len >= 12 {
                // SAFETY: move_frames hands over frames taken off the rx ring, not yet
                // on the tx ring; the descriptor lies inside one of our frames.
                let head = &mut unsafe { packet(&umem, d) }[..12];
                let (dst, src) = head.split_at_mut(6);
                dst.swap_with_slice(src);
            }
        });
        self.counters.tx_packets += m.packets as u64;
        self.counters.tx_bytes += m.bytes;
        self.forwarded(&m);
        if m.sent > 0 {
            // Forwarded frames only come back (to be refilled) once sent: drain.
            if let Err(e) = self.drain_tx() {
                self.pending = Some(e);
            }
        }
        self.refill_after_forward(&m)?;
        Ok(m.packets)
    }

    /// Sends up to `max` packets received here out of `out`, without copying: both
    /// sockets share one UMEM (open `out` with this socket as its `share`), so a frame
    /// this socket received goes straight onto `out`'s tx ring, and `out` hands it back
    /// once the kernel has sent it. Packets `out` has no tx room for stay in this
    /// socket's rx ring (the kernel counts what it cannot deliver meanwhile). Where this
    /// socket was opened with `complete_checksums`, partial checksums (see
    /// [`crate::csum`]) are completed on the way. Never waits.
    pub fn forward_to(&mut self, out: &mut XskSocket, max: u32) -> Result<Forwarded> {
        let complete_checksums = self.config.complete_checksums;
        self.take_pending()?;
        self.check_not_peeked()?;
        out.take_pending()?;
        if self.multi_buffer && !out.multi_buffer {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "forwarding from {} (multi-buffer) to {} (one frame per packet): a \
                     packet larger than a frame cannot be sent there; open both with the \
                     same multi_buffer setting",
                    self.ifname, out.ifname
                ),
            ));
        }
        if !Arc::ptr_eq(self.claim.umem(), out.claim.umem()) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "forwarding from {} to {} without a copy needs one UMEM: open the socket \
                     on {} with shared_umem set to the one on {}",
                    self.ifname, out.ifname, out.ifname, self.ifname
                ),
            ));
        }
        out.complete();
        self.reclaim();
        let umem = Arc::clone(self.claim.umem());
        let rx = self.rings.rx.as_mut().ok_or_else(errors::cannot_receive)?;
        let tx = out.rings.tx.as_mut().ok_or_else(errors::cannot_send)?;
        let mut checksums = 0;
        let m = move_frames(rx, tx, &mut self.ledger, max, |descs| {
            if !complete_checksums {
                return;
            }
            let (first, rest) = descs.split_first().expect("a packet has a descriptor");
            // SAFETY: move_frames hands over frames taken off the rx ring, not yet on
            // the tx ring; each descriptor lies inside one of our frames, a different
            // one each, so the first's bytes are not among the others'.
            let rest: Vec<&[u8]> = rest.iter().map(|d| &*unsafe { packet(&umem, d) }).collect();
            // SAFETY: as above.
            if csum::complete_partial_buffers(unsafe { packet(&umem, first) }, &rest) {
                checksums += 1;
            }
        });
        out.counters.tx_packets += m.packets as u64;
        out.counters.tx_bytes += m.bytes;
        self.counters.checksums_completed += checksums as u64;
        self.forwarded(&m);
        if m.sent > 0 {
            if let Err(e) = out.drain_tx() {
                out.pending = Some(e);
            }
        }
        self.refill_after_forward(&m)?;
        Ok(Forwarded {
            packets: m.packets,
            bytes: m.bytes,
            checksums,
        })
    }

    /// The receiving side's accounting once frames were moved to a tx ring (the ledger
    /// counted each as sent in move_frames, before anything could complete it).
    fn forwarded(&mut self, m: &Moved) {
        self.ledger.received(m.taken);
        self.counters.invalid_rx_descs += m.invalid as u64;
        self.counters.rx_packets += m.packets as u64;
        self.counters.rx_bytes += m.bytes;
    }

    /// Refills the fill ring after forwarding (and wakes the kernel if it asks).
    fn refill_after_forward(&mut self, m: &Moved) -> Result<()> {
        if self.refill() > 0 || m.taken == 0 {
            self.kick_rx_if_needed()?;
        }
        Ok(())
    }
}
