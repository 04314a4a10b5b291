//! Receiving: keep the fill ring stocked, take packets off the rx ring into
//! [`RxFrames`], peek and consume (packets a consumer could not take stay in the ring),
//! and take the frames back.

use std::time::Duration;

use super::{errors, packet_end, XskSocket, MAX_SEGMENTS};
use crate::error::Result;
use crate::sys::uapi;
use crate::umem::RxFrames;

impl XskSocket {
    /// Moves free frames onto the fill ring, keeping at most a fill cap of frames with
    /// the kernel for rx (the rest of the pool stays for tx); returns how many.
    pub fn refill(&mut self) -> u32 {
        self.reclaim();
        if self.rings.rx.is_none() {
            return 0;
        }
        let want = self.ledger.fill_room().min(self.rings.fill.size());
        if want == 0 {
            return 0;
        }
        let mut r = self.rings.fill.reserve(want);
        let n = r.len();
        let written = r.write_iter(self.ledger.to_fill_many(n));
        debug_assert_eq!(written, n, "fill_room() counted free frames");
        r.submit_all();
        n
    }

    /// Makes the system call the kernel asked for on the fill ring (or always, without
    /// need_wakeup).
    pub(super) fn kick_rx_if_needed(&mut self) -> Result<()> {
        // A busy-polling socket drives the device's NAPI with this call: always make it.
        if self.config.busy_poll.is_none()
            && self.config.need_wakeup
            && !self.rings.fill.needs_wakeup()
        {
            return Ok(());
        }
        self.counters.rx_wakeups += 1;
        let answer = crate::sys::xsk::kick_rx(self.fd());
        self.watch.settle_kick(answer, "waking up rx")
    }

    pub(super) fn check_not_peeked(&mut self) -> Result<()> {
        if self.peeked > 0 && self.claim.peek_abandoned(self.peek_id) {
            // Its RxFrames was dropped unconsumed: the entries are still in the ring.
            self.peeked = 0;
        }
        if self.peeked > 0 {
            return Err(errors::peek_in_progress());
        }
        Ok(())
    }

    /// Takes up to `max` received packets without waiting and appends them to `out`
    /// (an [`RxFrames`] of this socket, see [`XskSocket::rx_frames`]). A multi-buffer
    /// packet is taken whole, all its frames. The frames now belong to the caller until
    /// it hands them back with [`XskSocket::recycle`] (or drops `out`). Returns how many
    /// packets were taken.
    pub fn recv(&mut self, max: u32, out: &mut RxFrames) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        self.check_frames_are_mine(out)?;
        self.reclaim();
        let rx = self.rings.rx.as_mut().ok_or_else(errors::cannot_receive)?;
        let window = max.saturating_add(MAX_SEGMENTS);
        let peek = rx.peek(window);
        let n = peek.len();
        let first = out.len();
        let (mut at, mut taken, mut bytes) = (0u32, 0u32, 0u64);
        // Fast path: the leading run of one-frame packets in frames of ours (what a
        // sane kernel hands over), copied in bulk and checked in one tight loop.
        let k = n.min(max) as usize;
        if k > 0 {
            let base = out.append_descs(k, |d| peek.read_into(0, d));
            let (ok, b) = self.ledger.hold_run(&out.descs()[base..]);
            out.keep_frames(base, ok);
            (at, taken, bytes) = (ok as u32, ok as u32, b);
        }
        while taken < max && at < n {
            let d = peek.read(at);
            if d.options & uapi::XDP_PKT_CONTD == 0 {
                // A packet in one frame (the common case): one look at it.
                // The kernel only returns frames we put on the fill ring; anything else
                // would be a frame we do not own: never hand it out.
                if self.ledger.hold_if_owned(&d) {
                    bytes += d.len as u64;
                    out.push_frame(d);
                    taken += 1;
                } else {
                    self.counters.invalid_rx_descs += 1;
                }
                at += 1;
                continue;
            }
            let end = match packet_end(&peek, at) {
                Some(end) => end,
                // A packet longer than the whole window (never from a sane kernel):
                // drop what there is of it rather than stall on it.
                None if at == 0 && n == window => n,
                None => break,
            };
            let descs = (at..end).map(|i| peek.read(i));
            if descs.clone().all(|d| self.ledger.owns(&d)) {
                for d in descs.clone() {
                    self.ledger.hold(&d);
                    bytes += d.len as u64;
                }
                out.push_packet(descs);
                taken += 1;
            } else {
                for d in descs {
                    if self.ledger.owns(&d) {
                        self.ledger.hold(&d);
                        self.ledger.give_back(d.addr);
                    } else {
                        self.counters.invalid_rx_descs += 1;
                    }
                }
            }
            at = end;
        }
        peek.release(at);
        self.ledger.received(at);
        self.counters.rx_packets += taken as u64;
        self.counters.rx_bytes += bytes;
        if self.config.complete_checksums && taken > 0 {
            self.counters.checksums_completed += out.complete_checksums(first) as u64;
        }
        if at == 0 {
            self.refill();
            self.kick_rx_if_needed()?;
        }
        Ok(taken)
    }

    fn check_frames_are_mine(&self, frames: &RxFrames) -> Result<()> {
        if !std::sync::Arc::ptr_eq(frames.claim(), &self.claim) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidConfig,
                "these RxFrames belong to another socket: receive into sock.rx_frames()",
            ));
        }
        Ok(())
    }

    /// Looks at up to `max` received packets without taking them: they are put in
    /// `out` (which must be empty) and stay in the rx ring (the kernel does not reuse
    /// their frames) until [`XskSocket::rx_consume`] takes the first `k` and cancels
    /// the rest, which the next receive returns again. Returns how many were peeked.
    pub fn rx_peek(&mut self, max: u32, out: &mut RxFrames) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        self.check_frames_are_mine(out)?;
        if !out.is_empty() {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidConfig,
                "rx_peek needs an empty RxFrames: recycle what it holds first",
            ));
        }
        self.reclaim();
        let rx = self.rings.rx.as_mut().ok_or_else(errors::cannot_receive)?;
        let peek = rx.peek(max.saturating_add(MAX_SEGMENTS));
        // Hand out only the leading whole packets whose frames are all this socket's;
        // a packet with a foreign frame is dropped (and counted) by the next recv.
        let (mut at, mut n) = (0, 0);
        while n < max {
            let Some(end) = packet_end(&peek, at) else {
                break;
            };
            let descs = (at..end).map(|i| peek.read(i));
            if !descs.clone().all(|d| self.ledger.owns(&d)) {
                break;
            }
            out.push_packet(descs);
            at = end;
            n += 1;
        }
        let invalid_first = n == 0 && !peek.is_empty();
        drop(peek); // not released: the entries stay in the ring
        if invalid_first {
            let mut dropped = self.rx_frames(1);
            self.recv(1, &mut dropped)?; // counts it in invalid_rx_descs
            self.recycle(&mut dropped);
            return Ok(0);
        }
        if n > 0 {
            self.peek_id += 1;
            self.peeked = n;
            out.set_peek(Some(self.peek_id));
            if self.config.complete_checksums {
                // Whoever reads them before consuming sees them finished; consuming
                // them later finds nothing left to complete.
                out.complete_checksums(0);
            }
        } else {
            self.refill();
            self.kick_rx_if_needed()?;
        }
        Ok(n)
    }

    /// Takes the first `k` packets of the peek `frames` came from (their frames now
    /// belong to the caller, as after [`XskSocket::recv`]) and cancels the others: they
    /// stay in the ring for the next receive. `frames` keeps the `k` taken.
    pub fn rx_consume(&mut self, k: u32, frames: &mut RxFrames) -> Result<u32> {
        if self.peeked == 0 || frames.peek_id() != Some(self.peek_id) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidConfig,
                "these RxFrames are not the current peek: consume what rx_peek returned",
            ));
        }
        if k > self.peeked {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidConfig,
                format!("consuming {k} of {} peeked packets", self.peeked),
            ));
        }
        self.peeked = 0;
        frames.clear_peeked();
        frames.set_peek(None);
        if k == 0 {
            return Ok(0);
        }
        // The consumer has taken these packets: consuming them must not fail on an
        // error stored for later, or they would be delivered again.
        let stored = self.pending.take();
        let taken = self.recv(k, frames);
        self.pending = stored;
        taken
    }

    /// Hands received frames back; they go on the fill ring again, and `frames` is
    /// left empty for the next receive. Frames of another socket go back to their own
    /// socket. A frame this socket had not handed out (or one already handed back) is
    /// ignored and counted in `invalid_returns`: a frame is never in two places.
    /// Returns how many frames were taken back.
    pub fn recycle(&mut self, frames: &mut RxFrames) -> u32 {
        if frames.peek_id().is_some() {
            // Peeked, not received: the entries are still in the ring.
            return 0;
        }
        if !std::sync::Arc::ptr_eq(frames.claim(), &self.claim) {
            frames.send_home();
            return 0;
        }
        // The frames go straight back onto the fill ring, as many as it takes (the
        // common case: all of them), the rest to the free pool.
        let descs = frames.descs();
        let (mut back, mut direct, mut filled) = (0, 0, 0);
        if self.rings.rx.is_some() {
            let room = self.ledger.fill_cap_room().min(descs.len() as u32);
            let mut r = self.rings.fill.reserve(room);
            direct = r.len() as usize;
            let mut at = 0;
            back = self.ledger.give_back_to_fill(&descs[..direct], |frame| {
                r.write(at, frame);
                at += 1;
            });
            r.submit(at);
            filled = at;
        }
        back += self.ledger.give_back_all(&descs[direct..]);
        self.counters.invalid_returns += descs.len() as u64 - back as u64;
        frames.drain();
        if filled > 0 {
            // Frames went onto the fill ring: wake the kernel if it asks.
            if let Err(e) = self.kick_rx_if_needed() {
                self.pending = Some(e);
            }
        }
        self.after_give_back();
        back
    }

    /// Takes back frames (any address inside each) that dropped [`RxFrames`] returned.
    pub(super) fn give_back(&mut self, addrs: Vec<u64>) {
        for addr in addrs {
            if !self.ledger.give_back(addr) {
                self.counters.invalid_returns += 1;
            }
        }
        self.after_give_back();
    }

    fn after_give_back(&mut self) {
        if self.refill() > 0 {
            if let Err(e) = self.kick_rx_if_needed() {
                self.pending = Some(e);
            }
        }
    }

    /// Waits up to `timeout` for `events` (POLLIN/POLLOUT) on the socket; returns
    /// whether they came. Reports an interface that went away or down.
    pub fn poll(&self, events: libc::c_short, timeout: Option<Duration>) -> Result<bool> {
        self.watch.wait(events, timeout)
    }

    /// Asks the kernel now whether the socket's interface is up (a zero-length receive
    /// or send answers at once); a removed interface is an error.
    pub fn link_up(&self) -> Result<bool> {
        super::watch::probe_link(
            self.fd(),
            self.rings.rx.is_some(),
            &self.ifname,
            self.queue,
            self.watch.link(),
        )?;
        Ok(!self.watch.link().is_down())
    }

    /// Whether the interface was down when the socket last looked (no system call).
    pub fn link_down(&self) -> bool {
        self.watch.link().is_down()
    }

    /// How many times the socket saw its interface go down.
    pub fn link_downs(&self) -> u64 {
        self.watch.link().downs()
    }
}
