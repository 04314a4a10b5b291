//! The virtio-net data path of one queue pair, independent of vhost-user: it works on a
//! `virtio_queue::Queue` + guest memory, so it can be unit-tested with `MockSplitQueue`.

use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use log::{debug, warn};
use virtio_queue::{DescriptorChain, Error as QueueError, Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

use super::port::NetPort;
use super::stats::{inc, ChainError, QueueStats};
use super::virtio_net::{
    NetFeatures, ETH_HLEN, MAX_FRAME_LEN, VNET_HDR_LEN, VNET_HDR_NUM_BUFFERS_OFF,
};

/// One guest buffer segment (a validated descriptor).
#[derive(Clone, Copy, Debug)]
struct Seg {
    addr: GuestAddress,
    len: u32,
}

/// A validated RX chain: its buffers are `segs[start..end]`.
#[derive(Clone, Copy, Debug)]
struct RxChain {
    head: u16,
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Chains returned to the used ring.
    pub completed: usize,
    /// The guest must be notified (used-buffer notification, EVENT_IDX respected).
    pub notify: bool,
    /// Stopped because the port had no room; the pending chain was put back.
    pub port_full: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOutcome {
    /// Frames taken from the port (delivered or dropped).
    pub consumed: usize,
    pub delivered: usize,
    pub notify: bool,
    /// Stopped because the guest had no (or not enough) RX buffers. The frame is still in the
    /// port; guest notifications were re-enabled so its next RX kick resumes us.
    pub no_buffers: bool,
}

/// Data path state of one queue pair: the port plus scratch space (no per-packet allocation).
pub struct QueuePair<P: NetPort> {
    pub port: P,
    pub stats: Arc<QueueStats>,
    pub features: NetFeatures,
    segs: Vec<Seg>,
    rx_chains: Vec<RxChain>,
    deferred_bad: Vec<u16>,
    used_batch: Vec<(u16, u32)>,
}

/// Walk a descriptor chain, checking every descriptor, and append its buffers to `segs`.
/// Returns the total byte length. Never panics on guest input.
fn collect_chain<M: GuestMemory>(
    chain: DescriptorChain<&M>,
    mem: &M,
    device_writes: bool,
    segs: &mut Vec<Seg>,
) -> Result<usize, ChainError> {
    let mut total: u32 = 0;
    let mut count = 0usize;
    let mut last_has_next = false;
    let perm = if device_writes {
        Permissions::Write
    } else {
        Permissions::Read
    };
    // `DescriptorChain` follows indirect tables itself, stops after `queue_size` descriptors
    // (loop protection) and silently ends on unreadable descriptors; we detect the latter two
    // by the last yielded descriptor still having NEXT set.
    for desc in chain {
        count += 1;
        last_has_next = desc.has_next();
        if desc.is_write_only() != device_writes {
            return Err(ChainError::WrongDirection);
        }
        if desc.len() == 0 {
            continue;
        }
        if !mem.check_range(desc.addr(), desc.len() as usize, perm) {
            return Err(ChainError::OutOfMemory);
        }
        total = total.checked_add(desc.len()).ok_or(ChainError::TooLong)?;
        segs.push(Seg {
            addr: desc.addr(),
            len: desc.len(),
        });
    }
    if count == 0 {
        return Err(ChainError::Empty);
    }
    if last_has_next {
        return Err(ChainError::Truncated);
    }
    Ok(total as usize)
}

/// Copy `dst.len()` bytes out of `segs`, starting `skip` bytes into them.
fn read_segs<M: GuestMemory>(mem: &M, segs: &[Seg], mut skip: usize, dst: &mut [u8]) -> bool {
    let mut done = 0;
    for s in segs {
        let len = s.len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = (len - skip).min(dst.len() - done);
        let Some(addr) = s.addr.checked_add(skip as u64) else {
            return false;
        };
        if mem.read_slice(&mut dst[done..done + n], addr).is_err() {
            return false;
        }
        done += n;
        skip = 0;
        if done == dst.len() {
            break;
        }
    }
    done == dst.len()
}

/// Sequential writer over the concatenation of two byte slices (header, frame).
struct Src<'a> {
    parts: [&'a [u8]; 2],
}

impl Src<'_> {
    /// Write up to `cap` bytes into `segs`; returns bytes written.
    fn write_into<M: GuestMemory>(&mut self, mem: &M, segs: &[Seg]) -> Result<usize, ()> {
        let mut written = 0;
        for s in segs {
            let mut off = 0usize;
            while off < s.len as usize {
                let part = if !self.parts[0].is_empty() {
                    &mut self.parts[0]
                } else if !self.parts[1].is_empty() {
                    &mut self.parts[1]
                } else {
                    return Ok(written);
                };
                let n = part.len().min(s.len as usize - off);
                let addr = s.addr.checked_add(off as u64).ok_or(())?;
                mem.write_slice(&part[..n], addr).map_err(|_| ())?;
                *part = &part[n..];
                off += n;
                written += n;
            }
        }
        Ok(written)
    }
}

/// Append used elements and publish the new used index once (Release), so the guest never
/// sees a partial mergeable packet (Linux drops a packet whose `num_buffers` entries are not
/// all visible: "rx error: N buffers out of M missing").
/// `QueueT::add_used` publishes after every element, hence this helper for the RX queue.
fn publish_used<M: GuestMemory>(
    mem: &M,
    q: &mut Queue,
    elems: &[(u16, u32)],
) -> Result<(), QueueError> {
    if elems.is_empty() {
        return Ok(());
    }
    let size = q.size();
    let used = GuestAddress(q.used_ring());
    let mut next = Wrapping(q.next_used());
    for &(id, len) in elems {
        if id >= size {
            return Err(QueueError::InvalidDescriptorIndex);
        }
        let off = 4 + 8 * u64::from(next.0 % size);
        let addr = used.checked_add(off).ok_or(QueueError::AddressOverflow)?;
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(id).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        mem.write_slice(&elem, addr)
            .map_err(QueueError::GuestMemory)?;
        next += Wrapping(1);
    }
    q.set_next_used(next.0);
    let idx_addr = used.checked_add(2).ok_or(QueueError::AddressOverflow)?;
    mem.store(u16::to_le(next.0), idx_addr, Ordering::Release)
        .map_err(QueueError::GuestMemory)
}

/// Used-buffer notification check for entries published by `publish_used` since `old`.
/// Same rule as `Queue::needs_notification` (which we cannot use: it counts only `add_used`).
fn rx_needs_notification<M: GuestMemory>(mem: &M, q: &Queue, old: u16) -> Result<bool, QueueError> {
    let new = Wrapping(q.next_used());
    let old = Wrapping(old);
    if new == old {
        return Ok(false);
    }
    fence(Ordering::SeqCst);
    if !q.event_idx_enabled() {
        return Ok(true);
    }
    // used_event lives right after the avail ring: flags(2) idx(2) ring[size](2 each).
    let addr = GuestAddress(q.avail_ring())
        .checked_add(4 + 2 * u64::from(q.size()))
        .ok_or(QueueError::AddressOverflow)?;
    let used_event: u16 = mem
        .load(addr, Ordering::Acquire)
        .map_err(QueueError::GuestMemory)?;
    let used_event = Wrapping(u16::from_le(used_event));
    Ok(new - used_event - Wrapping(1) < new - old)
}

impl<P: NetPort> QueuePair<P> {
    pub fn new(port: P, stats: Arc<QueueStats>) -> Self {
        QueuePair {
            port,
            stats,
            features: NetFeatures::default(),
            segs: Vec::new(),
            rx_chains: Vec::new(),
            deferred_bad: Vec::new(),
            used_batch: Vec::new(),
        }
    }

    /// Guest TX queue: move every available chain to the port.
    pub fn process_tx<M: GuestMemory>(
        &mut self,
        mem: &M,
        q: &mut Queue,
    ) -> Result<TxOutcome, QueueError> {
        let mut out = TxOutcome::default();
        let hdr_len = self.features.hdr_len;
        let stats = self.stats.clone();
        let mut rechecked = false;
        q.disable_notification(mem)?;
        loop {
            let Some(chain) = q.pop_descriptor_chain(mem) else {
                // Ring looks empty: re-enable notifications, then re-check to close the race
                // with the driver adding buffers meanwhile. `rechecked` guards against a
                // garbage avail index making enable_notification report work forever.
                let more = q.enable_notification(mem)?;
                if more && !rechecked {
                    q.disable_notification(mem)?;
                    rechecked = true;
                    continue;
                }
                break;
            };
            rechecked = false;
            let head = chain.head_index();
            self.segs.clear();
            let verdict = match collect_chain(chain, mem, false, &mut self.segs) {
                Err(e) => Err(e),
                Ok(total) if total < hdr_len + ETH_HLEN => Err(ChainError::TooShort),
                Ok(total) => Ok(total - hdr_len),
            };
            match verdict {
                Err(e) => {
                    debug!("tx: bad chain {head}: {e:?}");
                    inc(&stats.tx_drop_bad_chain, 1);
                }
                Ok(len) if len > self.port.max_tx_frame() => {
                    inc(&stats.tx_drop_too_large, 1);
                }
                Ok(len) => {
                    // The virtio_net_hdr (first hdr_len bytes) is skipped: without
                    // VIRTIO_NET_F_CSUM / HOST_TSO* the guest may not request offloads.
                    match self.port.tx_reserve(len) {
                        Ok(Some(buf)) => {
                            if !read_segs(mem, &self.segs, hdr_len, &mut buf[..len]) {
                                inc(&stats.tx_drop_bad_chain, 1);
                            } else if let Err(e) = self.port.tx_commit(len) {
                                debug!("tx: port refused frame: {e}");
                                inc(&stats.tx_drop_port_refused, 1);
                            } else {
                                inc(&stats.tx_packets, 1);
                                inc(&stats.tx_bytes, len as u64);
                            }
                        }
                        Ok(None) => {
                            // Backpressure: un-pop the chain, retry when the port has room.
                            q.go_to_previous_position();
                            inc(&stats.tx_port_full, 1);
                            out.port_full = true;
                            break;
                        }
                        Err(e) => {
                            debug!("tx: port refused reservation: {e}");
                            inc(&stats.tx_drop_port_refused, 1);
                        }
                    }
                }
            }
            // TX buffers are device-readable only: used length is 0.
            match q.add_used(mem, head, 0) {
                Ok(()) => out.completed += 1,
                Err(e) => {
                    // e.g. head index >= queue size from a corrupt avail ring: nothing to return.
                    warn!("tx: add_used({head}) failed: {e}");
                    inc(&stats.ring_errors, 1);
                }
            }
        }
        if out.completed > 0 {
            if let Err(e) = self.port.tx_flush() {
                warn!("tx: port flush failed: {e}");
            }
            out.notify = q.needs_notification(mem)?;
        }
        Ok(out)
    }

    /// Port -> guest RX queue, at most `budget` frames.
    pub fn process_rx<M: GuestMemory>(
        &mut self,
        mem: &M,
        q: &mut Queue,
        budget: usize,
    ) -> Result<RxOutcome, QueueError> {
        let mut out = RxOutcome::default();
        let old_used = q.next_used();
        let stats = self.stats.clone();
        let mut fatal: Option<QueueError> = None;
        q.disable_notification(mem)?;
        let QueuePair {
            port,
            features,
            segs,
            rx_chains,
            deferred_bad,
            used_batch,
            ..
        } = self;
        let mut ctx = RxCtx {
            mem,
            q: &mut *q,
            f: *features,
            stats: &stats,
            segs,
            rx_chains,
            deferred_bad,
            used_batch,
        };
        let res = port.recv_batch(budget, &mut |frame: &[u8]| match ctx.deliver(frame) {
            Ok(Delivery::Delivered) => {
                out.delivered += 1;
                true
            }
            Ok(Delivery::Dropped) => true,
            Ok(Delivery::NoBuffers) => {
                out.no_buffers = true;
                false
            }
            Err(e) => {
                fatal = Some(e);
                false
            }
        });
        match res {
            Ok(n) => out.consumed = n,
            Err(e) => warn!("rx: port receive failed: {e}"),
        }
        if let Some(e) = fatal {
            inc(&stats.ring_errors, 1);
            return Err(e);
        }
        out.notify = rx_needs_notification(mem, q, old_used)?;
        Ok(out)
    }
}

enum Delivery {
    Delivered,
    Dropped,
    NoBuffers,
}

struct RxCtx<'a, M> {
    mem: &'a M,
    q: &'a mut Queue,
    f: NetFeatures,
    stats: &'a Arc<QueueStats>,
    segs: &'a mut Vec<Seg>,
    rx_chains: &'a mut Vec<RxChain>,
    deferred_bad: &'a mut Vec<u16>,
    used_batch: &'a mut Vec<(u16, u32)>,
}

impl<M: GuestMemory> RxCtx<'_, M> {
    /// Retire a malformed RX chain right away (used length 0; the guest driver frees it as a
    /// short packet).
    fn retire_bad(&mut self, head: u16) -> Result<(), QueueError> {
        inc(&self.stats.rx_bad_chain, 1);
        if head < self.q.size() {
            publish_used(self.mem, self.q, &[(head, 0)])?;
        }
        Ok(())
    }

    fn deliver(&mut self, frame: &[u8]) -> Result<Delivery, QueueError> {
        let hdr_len = self.f.hdr_len;
        if frame.len() > MAX_FRAME_LEN {
            inc(&self.stats.rx_drop_too_large, 1);
            return Ok(Delivery::Dropped);
        }
        let total = hdr_len + frame.len();
        self.segs.clear();
        self.rx_chains.clear();
        self.deferred_bad.clear();
        // Phase 1: collect enough validated chains, without writing anything.
        let mut start: Option<u16> = None; // avail position of this packet's first good chain
        let mut cap = 0usize;
        let mut rechecked = false;
        while cap < total {
            let Some(chain) = self.q.pop_descriptor_chain(self.mem) else {
                let more = self.q.enable_notification(self.mem)?;
                if more && !rechecked {
                    self.q.disable_notification(self.mem)?;
                    rechecked = true;
                    continue;
                }
                // Out of guest buffers: put back what we took, leave the frame in the port.
                // Notifications stay enabled so the guest's next RX kick wakes us up.
                if let Some(pos) = start {
                    self.q.set_next_avail(pos);
                }
                inc(&self.stats.rx_no_buffers, 1);
                return Ok(Delivery::NoBuffers);
            };
            rechecked = false;
            let pos = self.q.next_avail().wrapping_sub(1);
            let head = chain.head_index();
            let seg_start = self.segs.len();
            let res = match collect_chain(chain, self.mem, true, self.segs) {
                Ok(c) if c < VNET_HDR_LEN.max(hdr_len) => Err(ChainError::TooShort),
                r => r,
            };
            match res {
                Err(e) => {
                    debug!("rx: bad chain {head}: {e:?}");
                    self.segs.truncate(seg_start);
                    if start.is_none() {
                        self.retire_bad(head)?;
                    } else {
                        // Must not land between this packet's used entries.
                        self.deferred_bad.push(head);
                    }
                }
                Ok(c) => {
                    start.get_or_insert(pos);
                    self.rx_chains.push(RxChain {
                        head,
                        start: seg_start,
                        end: self.segs.len(),
                    });
                    cap += c;
                    if !self.f.mrg_rxbuf || self.rx_chains.len() >= usize::from(self.q.size()) {
                        break;
                    }
                }
            }
        }
        if cap < total {
            // Without mergeable buffers the single chain is too small (frame exceeds what the
            // guest is prepared to receive), or the whole ring cannot hold it: drop the frame,
            // hand the chains back untouched.
            if let Some(pos) = start {
                self.q.set_next_avail(pos);
            }
            inc(&self.stats.rx_drop_too_large, 1);
            return Ok(Delivery::Dropped);
        }
        // Phase 2: header + frame into the chains, then publish all used entries at once.
        let mut hdr = [0u8; VNET_HDR_LEN]; // flags=0, gso_type=NONE, no checksum info
        if hdr_len == VNET_HDR_LEN {
            let nb = self.rx_chains.len() as u16;
            hdr[VNET_HDR_NUM_BUFFERS_OFF..].copy_from_slice(&nb.to_le_bytes());
        }
        let mut src = Src {
            parts: [&hdr[..hdr_len], frame],
        };
        self.used_batch.clear();
        let mut ok = true;
        for ch in self.rx_chains.iter() {
            match src.write_into(self.mem, &self.segs[ch.start..ch.end]) {
                Ok(n) => self.used_batch.push((ch.head, n as u32)),
                Err(()) => {
                    // Validated above, so only a concurrent memory-map change gets here.
                    inc(&self.stats.rx_bad_chain, 1);
                    self.used_batch.clear();
                    self.used_batch
                        .extend(self.rx_chains.iter().map(|c| (c.head, 0)));
                    ok = false;
                    break;
                }
            }
        }
        self.used_batch
            .extend(self.deferred_bad.iter().map(|&h| (h, 0)));
        inc(&self.stats.rx_bad_chain, self.deferred_bad.len() as u64);
        publish_used(self.mem, self.q, self.used_batch)?;
        if ok {
            inc(&self.stats.rx_packets, 1);
            inc(&self.stats.rx_bytes, frame.len() as u64);
            Ok(Delivery::Delivered)
        } else {
            Ok(Delivery::Dropped)
        }
    }
}
