//! Guest -> backend: whatever a guest puts in its TX virtqueue and its memory (any
//! descriptor table, avail ring and contents, in guest memory of fuzzer-chosen regions,
//! with or without the virtio-net header the negotiated features imply) goes through
//! the backend's TX path (`QueuePair::process_tx`) into a port that checks what it is
//! given, the way the AF_XDP port hands out UMEM frames.
//!
//! Invariants checked after each input, beyond "no panic":
//! * every reserved frame is written only inside itself (guard bytes around it intact)
//!   and committed with the length that was reserved, never above the port's maximum;
//! * every chain the backend took off the ring is accounted for exactly once: sent,
//!   or dropped and counted (bad chain, too large, refused), or a ring error;
//! * the used ring got exactly the completed chains, each with length 0;
//! * the guest's memory outside the used ring is left as it was.
#![no_main]

use afxdp_rs::vhost::datapath::QueuePair;
use afxdp_rs::vhost::virtio_net::NetFeatures;
use afxdp_rs::vhost::{NetPort, QueueStats};
use libfuzzer_sys::fuzz_target;

#[path = "guest_model.rs"]
mod guest_model;
use guest_model::{guest_memory, snapshot, Input};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::EventSet;

const QSIZE: u16 = 16;
const GUARD: usize = 64;
const CANARY: u8 = 0xA5;

/// A port that hands out frames between guard bytes and records what it is given.
struct CheckPort {
    buf: Vec<u8>,
    reserved: Option<usize>,
    committed: Vec<usize>,
    room: usize,
    max: usize,
    refuse: bool,
}

impl NetPort for CheckPort {
    fn recv_batch(&mut self, _: usize, _: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<usize> {
        Ok(0)
    }
    fn max_tx_frame(&self) -> usize {
        self.max
    }
    fn tx_reserve(&mut self, len: usize) -> io::Result<Option<&mut [u8]>> {
        assert!(len <= self.max, "reserved {len} > max {}", self.max);
        if self.room == 0 {
            return Ok(None);
        }
        self.buf.clear();
        self.buf.resize(len + 2 * GUARD, CANARY);
        self.reserved = Some(len);
        Ok(Some(&mut self.buf[GUARD..GUARD + len]))
    }
    fn tx_commit(&mut self, len: usize) -> io::Result<()> {
        assert_eq!(
            self.reserved.take(),
            Some(len),
            "committed what was not reserved"
        );
        let (head, rest) = self.buf.split_at(GUARD);
        assert!(
            head.iter().all(|&b| b == CANARY),
            "written before the frame"
        );
        assert!(
            rest[len..].iter().all(|&b| b == CANARY),
            "written past the frame"
        );
        if self.refuse {
            return Err(io::Error::other("refused"));
        }
        self.committed.push(len);
        self.room -= 1;
        Ok(())
    }
    fn tx_flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn rx_fd(&self) -> RawFd {
        -1
    }
    fn tx_wake(&self) -> Option<(RawFd, EventSet)> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Input(data);
    let flags = b.u8();
    let Some((mem, regions)) = guest_memory(flags, &mut b) else {
        return;
    };
    let vq = MockSplitQueue::create(&mem, GuestAddress(0), QSIZE);
    // Any descriptors, any chains, any avail entries.
    let table = vq.desc_table_addr().0;
    for i in 0..u64::from(QSIZE) {
        let (addr, len) = (u64::from(b.u32()) % 0x30_0000, u32::from(b.u16()));
        let (dflags, next) = (u16::from(b.u8() & 0x7), u16::from(b.u8()) % (QSIZE + 2));
        let at = table + 16 * i;
        mem.write_obj(addr, GuestAddress(at)).unwrap();
        mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        mem.write_obj(dflags, GuestAddress(at + 12)).unwrap();
        mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }
    let avail = vq.avail_addr().0;
    let entries = b.u8() % (QSIZE as u8 * 2);
    for i in 0..u64::from(QSIZE) {
        let head = u16::from(b.u8()) % (QSIZE + 4);
        mem.write_obj(head, GuestAddress(avail + 4 + 2 * i))
            .unwrap();
    }
    mem.write_obj(u16::from(entries), GuestAddress(avail + 2))
        .unwrap();
    // The data the descriptors point at: the rest of the input, repeated.
    let rest = b.0.to_vec();
    if !rest.is_empty() {
        for &(base, size) in &regions[1..] {
            let fill: Vec<u8> = rest.iter().cycle().take(size).copied().collect();
            mem.write_slice(&fill, base).unwrap();
        }
    }
    let before = snapshot(&mem, &regions);

    let mut q: virtio_queue::Queue = vq.create_queue().unwrap();
    q.set_event_idx(flags & 0x10 != 0);
    let port = CheckPort {
        buf: Vec::new(),
        reserved: None,
        committed: Vec::new(),
        room: usize::from(flags >> 5) * 3,
        max: 64 + usize::from(data.len() as u16 % 2048),
        refuse: flags & 0x08 != 0,
    };
    let stats = Arc::new(QueueStats::default());
    let mut qp = QueuePair::new(port, stats.clone());
    qp.features = NetFeatures::from_acked(if flags & 0x04 != 0 { 1 << 32 } else { 0 });
    let Ok(out) = qp.process_tx(&mem, &mut q) else {
        return; // a ring error the queue itself reports (e.g. the ring outside memory)
    };
    let s = stats.snapshot();
    assert_eq!(s.tx_packets as usize, qp.port.committed.len());
    assert!(qp.port.committed.iter().all(|&l| l <= qp.port.max));
    let accounted =
        s.tx_packets + s.tx_drop_bad_chain + s.tx_drop_too_large + s.tx_drop_port_refused;
    assert_eq!(
        accounted,
        out.completed as u64 + s.ring_errors,
        "a chain taken off the ring and not accounted for: {s:?}, {out:?}"
    );
    // Only the used ring (and its event word) changed in guest memory.
    let after = snapshot(&mem, &regions);
    let used = vq.used_addr().0 as usize;
    let used_end = used + 4 + 8 * usize::from(QSIZE) + 2;
    for (r, (old, new)) in before.iter().zip(&after).enumerate() {
        for (i, (a, b)) in old.iter().zip(new).enumerate() {
            let addr = regions[r].0 .0 as usize + i;
            if a != b {
                assert!(
                    r == 0 && (used..used_end).contains(&addr),
                    "guest byte {addr:#x} changed outside the used ring"
                );
            }
        }
    }
    // The used ring holds the completed chains, each with length 0.
    // The device counts its used entries from 0 and writes the index after the last:
    // it is the number completed. (With none completed, the index is whatever the guest
    // left there: its avail ring may run into the used ring, as the mock's 16-entry one
    // does.)
    let used_idx: u16 = mem.read_obj(GuestAddress(used as u64 + 2)).unwrap();
    if out.completed == 0 {
        return;
    }
    assert_eq!(usize::from(used_idx), out.completed);
    for i in 0..u64::from(used_idx.min(QSIZE)) {
        let len: u32 = mem
            .read_obj(GuestAddress(used as u64 + 4 + 8 * i + 4))
            .unwrap();
        assert_eq!(len, 0, "a TX buffer is device-readable: used length 0");
    }
});
