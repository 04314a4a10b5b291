//! Sending: copy packets into free frames and onto the tx ring, kick the kernel only
//! when it asks, and take completed frames back.

#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use super::watch::{remaining, Backoff};
use super::{errors, XskSocket};
use crate::error::Result;
use crate::ring::ProducerRing;
use crate::sys::{self, uapi, XdpDesc};

/// How long frames may be in flight without a completion before the socket kicks the
/// kernel again, whether or not its need_wakeup flag asks for it. A kick the kernel
/// needed and did not get (a wakeup flag read at the wrong moment, a driver that clears
/// it too early) would otherwise leave descriptors on the tx ring for ever; a kick it
/// did not need costs one system call per interval of a stall.
pub const REKICK_AFTER: Duration = Duration::from_millis(10);

/// Re-kicks in one stall (no completion in between) after which a zero-copy socket
/// that prefers busy polling stops preferring it (see `busy_poll_tx_fallbacks`).
const BUSY_POLL_TX_REKICKS: u64 = 3;

/// What one [`XskSocket::send_step`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStep {
    /// Packets were queued or frames completed: try again at once.
    Progress,
    /// Nothing moved: wait a little for the kernel (see [`Backoff`]).
    Stalled,
    /// A failure after some packets were queued; it is reported by the next call.
    Stopped,
}

impl XskSocket {
    /// Moves completed tx frames back to the pool; returns how many entries the
    /// completion ring had.
    ///
    /// A frame of another socket sharing the UMEM (sent here by zero-copy forwarding)
    /// goes back to that socket. An address that is no socket's frame is never put in
    /// a pool (a frame has one owner); it is counted in `invalid_completions`. Through
    /// this library's API that cannot happen: the kernel only completes what was sent.
    pub fn complete(&mut self) -> u32 {
        let peek = self.rings.comp.peek(self.rings.comp.size());
        let n = peek.len();
        let mut packets = 0;
        for i in 0..n {
            let addr = peek.read(i);
            match self.ledger.completed(addr) {
                Some(last) => packets += last as u64,
                None => self.foreign.push(addr),
            }
        }
        peek.release_all();
        self.counters.tx_completed += packets;
        if !self.foreign.is_empty() {
            self.send_foreign_home();
        }
        self.watch_completions(n);
        n
    }

    /// Every path that waits for the kernel to send takes completions through
    /// [`XskSocket::complete`], so this is where a stall is noticed: frames in flight
    /// (on the tx ring, or sent and not completed) and no completion for
    /// [`REKICK_AFTER`] make a kick whatever need_wakeup says (counted in
    /// `tx_rekicks`). The clock is read only while stalled.
    fn watch_completions(&mut self, completed: u32) {
        let in_flight = completed == 0
            && (self.ledger.counts().tx_outstanding > 0
                || self.rings.tx.as_ref().is_some_and(|t| t.pending() > 0));
        if !in_flight {
            self.tx_stalled_since = None;
            return;
        }
        let now = Instant::now();
        match self.tx_stalled_since {
            Some((since, kicks)) if now.duration_since(since) >= REKICK_AFTER => {
                self.tx_stalled_since = Some((now, kicks + 1));
                self.counters.tx_rekicks += 1;
                if self.zerocopy
                    && self.config.busy_poll.is_some()
                    && self.counters.busy_poll_tx_fallbacks == 0
                    && kicks + 1 >= BUSY_POLL_TX_REKICKS
                {
                    // In zero-copy a socket that prefers busy polling gets no driver
                    // wakeup from sendto(2): the kernel busy-polls the socket's NAPI
                    // instead, which on some drivers never transmits. Measured on
                    // virtio_net (6.18): the first descriptor stayed on the ring for
                    // ever. Without the preference the kick wakes the driver again.
                    if sys::xsk::set_socket_int(self.fd(), libc::SO_PREFER_BUSY_POLL, 0).is_ok() {
                        self.counters.busy_poll_tx_fallbacks = 1;
                    }
                }
                let answer = sys::xsk::kick_tx(self.fd());
                if let Err(e) = self.watch.settle_kick(answer, "sending") {
                    self.pending.get_or_insert(e);
                }
            }
            Some(_) => {}
            None => self.tx_stalled_since = Some((now, 0)),
        }
    }

    /// Hands completed frames of other sockets back to them (one lookup and one
    /// hand-over per owner, no allocation).
    fn send_foreign_home(&mut self) {
        let umem = std::sync::Arc::clone(self.claim.umem());
        let fs = umem.config().frame_size as u64;
        let f = &mut self.foreign;
        let mut i = 0;
        while i < f.len() {
            let Some(owner) = umem.owner_of(f[i]) else {
                self.counters.invalid_completions += 1;
                i += 1;
                continue;
            };
            let (lo, hi) = owner.frames();
            let range = lo as u64 * fs..hi as u64 * fs;
            // Gather the owner's addresses at f[i..j].
            let mut j = i;
            for k in i..f.len() {
                if range.contains(&f[k]) {
                    f.swap(j, k);
                    j += 1;
                }
            }
            owner.completed_elsewhere(&f[i..j]);
            i = j;
        }
        f.clear();
    }

    pub(super) fn tx_ring(&mut self) -> Result<&mut ProducerRing<XdpDesc>> {
        self.rings.tx.as_mut().ok_or_else(errors::cannot_send)
    }

    /// Checks that a packet of `len` bytes can be sent (`index` names it in the error).
    pub fn check_packet(&self, index: usize, len: usize) -> Result<()> {
        if len > self.max_packet as usize {
            return Err(errors::packet_too_large(
                index,
                len,
                self.max_packet,
                &self.ifname,
                self.config.umem.frame_size,
                self.multi_buffer,
            ));
        }
        if len < super::MIN_PACKET {
            return Err(errors::packet_too_short(index, len));
        }
        Ok(())
    }

    /// Checks every packet; the error names the first that cannot be sent.
    pub fn check_packets<P: AsRef<[u8]>>(&self, packets: &[P]) -> Result<()> {
        for (i, p) in packets.iter().enumerate() {
            self.check_packet(i, p.as_ref().len())?;
        }
        Ok(())
    }

    /// Kicks the kernel to transmit, if it asked for it (or always without
    /// need_wakeup). Transient refusals (EAGAIN, EBUSY, ENOBUFS) are not errors: the
    /// frames stay on the ring for the next kick.
    pub fn kick_tx(&mut self) -> Result<()> {
        self.kick_tx_rounds(0)
    }

    /// Like [`XskSocket::kick_tx`], but goes on until the kernel has taken everything
    /// on the tx ring: in copy mode one sendto sends at most a small batch (32 frames)
    /// and answers EAGAIN while more wait. Completions are taken back in between, so
    /// the completion ring never blocks the kernel.
    pub fn drain_tx(&mut self) -> Result<()> {
        let rounds = self.config.tx_size / 16 + 2;
        self.kick_tx_rounds(rounds)
    }

    fn kick_tx_rounds(&mut self, mut rounds: u32) -> Result<()> {
        let Some(tx) = self.rings.tx.as_ref() else {
            return Ok(());
        };
        let asked = tx.needs_wakeup() && !super::hooks::tx_wakeups_hidden();
        if self.config.busy_poll.is_none() && self.config.need_wakeup && !asked {
            return Ok(());
        }
        loop {
            self.counters.tx_wakeups += 1;
            match sys::xsk::kick_tx(self.fd()) {
                // More waits on the ring: take completions back and kick again.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && rounds > 0 => {
                    rounds -= 1;
                    self.complete();
                }
                // A down link is a state (see queue_checked for new sends).
                answer => return self.watch.settle_kick(answer, "sending"),
            }
        }
    }

    /// Queues as many of `packets` as fit now (free frames and tx ring space), copying
    /// each into a frame; returns how many. Every packet is checked first: if one is
    /// too large or too small, nothing is queued and the error names it.
    pub fn send_some<P: AsRef<[u8]>>(&mut self, packets: &[P]) -> Result<usize> {
        self.check_packets(packets)?;
        self.queue_checked(packets)
    }

    /// Queues what fits of packets already checked with [`XskSocket::check_packets`]:
    /// each in one frame, or with multi-buffer a larger one in as many frames as it
    /// needs (all but the last descriptor marked `XDP_PKT_CONTD`). A packet is queued
    /// whole or not at all.
    fn queue_checked<P: AsRef<[u8]>>(&mut self, packets: &[P]) -> Result<usize> {
        self.take_pending()?;
        self.tx_ring()?;
        self.check_link_for_send()?;
        self.complete();
        self.reclaim();
        let fs = self.config.umem.frame_size as usize;
        let frames = |p: &P| p.as_ref().len().div_ceil(fs).max(1) as u32;
        // Whole packets that fit in the free frames, then in the tx ring's room.
        let (mut count, mut need) = (0, 0u32);
        for p in packets {
            if need + frames(p) > self.ledger.free() {
                break;
            }
            need += frames(p);
            count += 1;
        }
        let umem = std::sync::Arc::clone(self.claim.umem());
        let tx = self.rings.tx.as_mut().expect("checked above");
        let mut r = tx.reserve(need);
        while need > r.len() {
            count -= 1;
            need -= frames(&packets[count]);
        }
        let (mut slot, mut bytes) = (0, 0u64);
        for p in &packets[..count] {
            let data = p.as_ref();
            let mut chunks = data.chunks(fs).peekable();
            while let Some(chunk) = chunks.next() {
                let more = chunks.peek().is_some();
                let frame = self.ledger.to_tx(!more);
                // Never hand the kernel a descriptor outside one frame of the UMEM.
                assert!(
                    umem.contains(frame, chunk.len() as u32),
                    "tx descriptor ({frame}, {}) outside the UMEM",
                    chunk.len()
                );
                // SAFETY: the frame came from the free pool, so the user owns it and
                // the kernel is not touching it; a chunk is at most a frame long, so
                // the range stays inside the frame (checked above).
                unsafe { umem.slice_mut(frame, chunk.len() as u32) }.copy_from_slice(chunk);
                r.write(
                    slot,
                    XdpDesc {
                        addr: frame,
                        len: chunk.len() as u32,
                        options: if more { uapi::XDP_PKT_CONTD } else { 0 },
                    },
                );
                slot += 1;
            }
            bytes += data.len() as u64;
        }
        r.submit(slot);
        self.counters.tx_packets += count as u64;
        self.counters.tx_bytes += bytes;
        if count > 0 {
            // The packets are queued whatever the kick says: report its failure on the
            // next call, so the caller's count of what was queued stays right. Drain:
            // in copy mode one sendto sends 32 frames, and the rest must not wait for
            // a later call.
            if let Err(e) = self.drain_tx() {
                self.pending = Some(e);
            }
        }
        Ok(count)
    }

    /// Whether a packet of `len` bytes can be queued now (free frames and tx ring room).
    pub fn tx_room(&mut self, len: usize) -> bool {
        let frames = len.div_ceil(self.config.umem.frame_size as usize).max(1) as u32;
        self.complete();
        self.reclaim();
        let room = self.rings.tx.as_mut().map_or(0, |tx| tx.free(frames));
        self.ledger.free() >= frames && room >= frames
    }

    /// A free frame to write one outgoing packet into in place, then queue with
    /// [`XskSocket::commit_frame`]: for a producer whose bytes sit where the library
    /// cannot read them from (a guest's memory), saving a copy. None when no frame is
    /// free or the tx ring is full. Until committed, the same frame is handed out again.
    pub fn reserve_frame(&mut self) -> Result<Option<&mut [u8]>> {
        self.take_pending()?;
        self.tx_ring()?;
        if self.reserved.is_none() {
            if !self.tx_room(1) {
                return Ok(None);
            }
            self.reserved = Some(self.ledger.to_tx(true));
        }
        let frame = self.reserved.expect("reserved above");
        let fs = self.config.umem.frame_size;
        // SAFETY: the frame came from the free pool and is held for this reservation
        // (counted as outstanding), so the kernel is not touching it; it is fs bytes long,
        // and &mut self makes this the only reference into it.
        Ok(Some(unsafe { self.claim.umem().slice_mut(frame, fs) }))
    }

    /// Queues the first `len` bytes of the reserved frame as one packet (checked as
    /// [`XskSocket::send`] checks packets). Returns false, keeping the reservation, when
    /// the tx ring has no room after all. The kernel is kicked by the next send, flush
    /// or [`XskSocket::drain_tx`].
    pub fn commit_frame(&mut self, len: usize) -> Result<bool> {
        let Some(frame) = self.reserved else {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidConfig,
                "commit_frame without a reserved frame: call reserve_frame first",
            ));
        };
        self.check_packet(0, len)?;
        if len > self.config.umem.frame_size as usize {
            return Err(errors::packet_too_large(
                0,
                len,
                self.config.umem.frame_size,
                &self.ifname,
                self.config.umem.frame_size,
                false,
            ));
        }
        let tx = self.tx_ring()?;
        let mut r = tx.reserve(1);
        if r.is_empty() {
            return Ok(false);
        }
        r.write(
            0,
            XdpDesc {
                addr: frame,
                len: len as u32,
                options: 0,
            },
        );
        r.submit_all();
        self.reserved = None;
        self.counters.tx_packets += 1;
        self.counters.tx_bytes += len as u64;
        Ok(true)
    }

    /// Refuses to queue while the interface is down (packets would sit on the tx ring
    /// for as long as it stays down): when the last look saw it down, looks again.
    fn check_link_for_send(&mut self) -> Result<()> {
        if !self.watch.link().is_down() {
            return Ok(());
        }
        super::watch::probe_link(
            self.fd(),
            false,
            &self.ifname,
            self.queue,
            self.watch.link(),
        )?;
        if self.watch.link().is_down() {
            return Err(errors::link_down(&self.ifname, self.queue, "sending"));
        }
        Ok(())
    }

    /// One step of a blocking send of packets checked with
    /// [`XskSocket::check_packets`]: queues what fits of `packets[*sent..]` (advancing
    /// `sent`), and when nothing fits drives the kernel and takes completions. A
    /// failure once some packets are queued is kept for the next call
    /// ([`SendStep::Stopped`]) instead of losing the count.
    pub fn send_step<P: AsRef<[u8]>>(
        &mut self,
        packets: &[P],
        sent: &mut usize,
    ) -> Result<SendStep> {
        let n = match self.queue_checked(&packets[*sent..]) {
            Ok(n) => n,
            // The link went down during the call: report what was queued; the next
            // call says why nothing more is.
            Err(e) if *sent > 0 && e.kind() == crate::error::ErrorKind::LinkDown => {
                return Ok(SendStep::Stopped);
            }
            Err(e) if *sent > 0 => {
                self.pending = Some(e);
                return Ok(SendStep::Stopped);
            }
            Err(e) => return Err(e),
        };
        *sent += n;
        if n > 0 || *sent == packets.len() {
            return Ok(SendStep::Progress);
        }
        // Out of frames or tx slots: drive the kernel and take completions.
        self.kick_tx()?;
        Ok(if self.complete() > 0 {
            SendStep::Progress
        } else {
            SendStep::Stalled
        })
    }

    /// Queues all `packets`, waiting up to `timeout` (forever if `None`) for frames or
    /// ring space; returns how many were queued (fewer only when the time ran out, or
    /// when a failure after some were queued is kept for the next call).
    pub fn send<P: AsRef<[u8]>>(
        &mut self,
        packets: &[P],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.take_pending()?;
        self.check_packets(packets)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut sent = 0;
        let mut backoff = Backoff::default();
        while sent < packets.len() {
            match self.send_step(packets, &mut sent)? {
                SendStep::Stopped => break,
                SendStep::Progress => backoff.reset(),
                SendStep::Stalled => {
                    let Some(wait) = remaining(deadline) else {
                        break;
                    };
                    backoff.wait(wait);
                }
            }
        }
        Ok(sent)
    }

    /// Waits up to `timeout` (forever if `None`) until every queued packet has been
    /// sent (seen on the completion ring). Returns whether it got there.
    pub fn flush(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = Backoff::default();
        loop {
            self.complete();
            if self.ledger.counts().tx_outstanding == 0 {
                return Ok(true);
            }
            self.drain_tx()?;
            if self.complete() > 0 {
                backoff.reset();
                continue;
            }
            let Some(wait) = remaining(deadline) else {
                return Ok(false);
            };
            if self.watch.link().is_down() {
                // Nothing leaves while the link is down: look again now and then
                // rather than every few microseconds.
                let pause = Duration::from_millis(10);
                std::thread::sleep(wait.map_or(pause, |w| w.min(pause)));
                continue;
            }
            backoff.wait(wait);
        }
    }
}
