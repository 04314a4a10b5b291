//! Backend -> guest: arbitrary received packets (any length up to past the largest the
//! backend takes, any bytes) delivered by the backend's RX path
//! (`QueuePair::process_rx`) into whatever RX buffers a guest offers: any descriptor
//! table and avail ring in guest memory of fuzzer-chosen regions, device-writable or
//! not, with or without mergeable RX buffers and the modern header.
//!
//! Invariants checked after each input, beyond "no panic":
//! * the guest's memory changes only inside descriptors the guest marked
//!   device-writable, and in the used ring;
//! * every packet the port offered is accounted for exactly once: delivered (counted
//!   in rx_packets), dropped and counted (too large), or left in the port because the
//!   guest had no buffers (counted in rx_no_buffers), and a packet left in the port is
//!   the first one not taken;
//! * the used ring's index moved by at most the chains the guest made available.
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
const VIRTQ_DESC_F_NEXT: u16 = 1;
const VIRTQ_DESC_F_WRITE: u16 = 2;

/// A port that offers the packets in order, and records which ones were taken.
struct OfferPort {
    packets: Vec<Vec<u8>>,
    taken: usize,
}

impl NetPort for OfferPort {
    fn recv_batch(&mut self, budget: usize, f: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<usize> {
        let mut n = 0;
        while n < budget && self.taken < self.packets.len() {
            if !f(&self.packets[self.taken]) {
                break;
            }
            self.taken += 1;
            n += 1;
        }
        Ok(n)
    }
    fn max_tx_frame(&self) -> usize {
        0
    }
    fn tx_reserve(&mut self, _: usize) -> io::Result<Option<&mut [u8]>> {
        Ok(None)
    }
    fn tx_commit(&mut self, _: usize) -> io::Result<()> {
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
    let table = vq.desc_table_addr().0;
    // The device-writable ranges the guest offers, wherever they point.
    let mut writable: Vec<(u64, u64)> = Vec::new();
    for i in 0..u64::from(QSIZE) {
        let (addr, len) = (u64::from(b.u32()) % 0x30_0000, u32::from(b.u16()));
        let dflags = u16::from(b.u8()) & (VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE | 4);
        let next = u16::from(b.u8()) % (QSIZE + 2);
        let at = table + 16 * i;
        mem.write_obj(addr, GuestAddress(at)).unwrap();
        mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        mem.write_obj(dflags, GuestAddress(at + 12)).unwrap();
        mem.write_obj(next, GuestAddress(at + 14)).unwrap();
        if dflags & VIRTQ_DESC_F_WRITE != 0 {
            writable.push((addr, addr + u64::from(len)));
        }
    }
    let avail = vq.avail_addr().0;
    let entries = b.u8() % (QSIZE as u8 + 4);
    for i in 0..u64::from(QSIZE) {
        let head = u16::from(b.u8()) % (QSIZE + 4);
        mem.write_obj(head, GuestAddress(avail + 4 + 2 * i))
            .unwrap();
    }
    mem.write_obj(u16::from(entries), GuestAddress(avail + 2))
        .unwrap();
    // The packets: a count and, for each, a length (past the backend's limit too) and
    // bytes from the rest of the input, repeated.
    let count = usize::from(b.u8() % 8);
    let lens: Vec<usize> = (0..count)
        .map(|_| {
            let l = usize::from(b.u16());
            if l & 0x8000 != 0 {
                65_000 + (l & 0x7ff) // around and past the largest frame taken
            } else {
                l & 0x7ff
            }
        })
        .collect();
    let rest = b.0.to_vec();
    let packets: Vec<Vec<u8>> = lens
        .iter()
        .map(|&l| {
            if rest.is_empty() {
                vec![0u8; l]
            } else {
                rest.iter().cycle().take(l).copied().collect()
            }
        })
        .collect();

    let before = snapshot(&mem, &regions);

    let mut q: virtio_queue::Queue = vq.create_queue().unwrap();
    q.set_event_idx(flags & 0x10 != 0);
    let stats = Arc::new(QueueStats::default());
    let port = OfferPort { packets, taken: 0 };
    let mut qp = QueuePair::new(port, stats.clone());
    // VIRTIO_F_VERSION_1 (bit 32) and VIRTIO_NET_F_MRG_RXBUF (bit 15), each or not.
    let acked = if flags & 0x04 != 0 { 1u64 << 32 } else { 0 }
        | if flags & 0x08 != 0 { 1u64 << 15 } else { 0 };
    qp.features = NetFeatures::from_acked(acked);
    let result = qp.process_rx(&mem, &mut q, 64);
    let s = stats.snapshot();
    let taken = qp.port.taken;
    let offered = qp.port.packets.len();
    match &result {
        Ok(out) => {
            assert_eq!(out.consumed, taken);
            assert_eq!(out.delivered as u64, s.rx_packets, "{s:?} {out:?}");
            // Taken: delivered or dropped and counted.
            assert_eq!(
                taken as u64,
                s.rx_packets + s.rx_drop_too_large,
                "{s:?} {out:?}"
            );
            if taken < offered {
                assert!(
                    out.no_buffers && s.rx_no_buffers > 0,
                    "a packet left behind unsaid"
                );
            }
        }
        Err(_) => assert!(s.ring_errors > 0, "a ring error not counted"),
    }
    // Guest memory: changed only in device-writable buffers and the used ring.
    let after = snapshot(&mem, &regions);
    let used = vq.used_addr().0;
    let used_end = used + 4 + 8 * u64::from(QSIZE) + 2;
    for (r, (old, new)) in before.iter().zip(&after).enumerate() {
        for (i, (x, y)) in old.iter().zip(new).enumerate() {
            if x == y {
                continue;
            }
            let addr = regions[r].0 .0 + i as u64;
            let in_used = r == 0 && (used..used_end).contains(&addr);
            let in_buffer = writable.iter().any(|&(lo, hi)| (lo..hi).contains(&addr));
            assert!(
                in_used || in_buffer,
                "guest byte {addr:#x} written outside its RX buffers and the used ring"
            );
        }
    }
    // The device counts its used entries from 0 and writes the index after the last:
    // unless the guest pointed an RX buffer at its own rings (or wrote nothing used),
    // the index is at most the chains made available.
    let used_idx: u16 = mem.read_obj(GuestAddress(used + 2)).unwrap();
    let rings = vq.avail_addr().0..used_end;
    let buffer_over_rings = writable
        .iter()
        .any(|&(lo, hi)| lo < rings.end && rings.start < hi);
    let at = used as usize + 2;
    let wrote_used = before[0][at..at + 2] != after[0][at..at + 2];
    assert!(
        buffer_over_rings || !wrote_used || usize::from(used_idx) <= usize::from(entries),
        "used {used_idx} chains of {entries} made available"
    );
});
