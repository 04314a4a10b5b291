//! Data path and backend tests over `MockSplitQueue` + `GuestMemoryMmap`.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::backend::{EventRegistrar, NetBackend, NetBackendConfig, Vring};
use super::datapath::QueuePair;
use super::port::{LoopbackPort, NetPort};
use super::stats::QueueStats;
use super::virtio_net::{NetFeatures, VNET_HDR_LEN};

const QSIZE: u16 = 64;
const MEM_SIZE: usize = 0x40_0000;
const BUF_BASE: u64 = 0x1_0000;

fn new_mem() -> GuestMemoryMmap {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect();
    if len >= 14 {
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xd5]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x5e]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
    }
    f
}

/// Driver side of one split virtqueue.
struct Driver<'a> {
    mem: &'a GuestMemoryMmap,
    vq: MockSplitQueue<'a, GuestMemoryMmap>,
    next_desc: u16,
    next_buf: u64,
    used_seen: u16,
}

impl<'a> Driver<'a> {
    fn new(mem: &'a GuestMemoryMmap, base: u64, buf_base: u64) -> Self {
        Driver {
            mem,
            vq: MockSplitQueue::create(mem, GuestAddress(base), QSIZE),
            next_desc: 0,
            next_buf: buf_base,
            used_seen: 0,
        }
    }

    fn queue(&self) -> Queue {
        self.vq.create_queue().unwrap()
    }

    fn alloc(&mut self, len: u32) -> u64 {
        let a = self.next_buf;
        self.next_buf += (u64::from(len) + 63) & !63;
        a
    }

    /// Add a well-formed chain; returns its head index.
    fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        let descs: Vec<RawDescriptor> = bufs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, write))| {
                let mut flags = if write { VRING_DESC_F_WRITE as u16 } else { 0 };
                if i + 1 < bufs.len() {
                    flags |= VRING_DESC_F_NEXT as u16;
                }
                RawDescriptor::from(SplitDescriptor::new(addr, len, flags, head + i as u16 + 1))
            })
            .collect();
        self.add_raw(&descs)
    }

    /// Add raw descriptors at the next table slots; the first one is made available.
    fn add_raw(&mut self, descs: &[RawDescriptor]) -> u16 {
        let head = self.next_desc;
        assert!(usize::from(head) + descs.len() <= usize::from(QSIZE));
        self.vq.add_desc_chains(descs, head).unwrap();
        self.next_desc += descs.len() as u16;
        head
    }

    /// TX packet (header + frame) split at the given byte sizes (last one takes the rest).
    fn tx_packet(&mut self, pkt: &[u8], splits: &[usize]) -> u16 {
        let mut hdr_and_frame = vec![0u8; VNET_HDR_LEN];
        hdr_and_frame.extend_from_slice(pkt);
        let mut bufs = Vec::new();
        let mut off = 0;
        for (i, &s) in splits.iter().enumerate() {
            let len = if i + 1 == splits.len() {
                hdr_and_frame.len() - off
            } else {
                s
            };
            let addr = self.alloc(len as u32);
            self.mem
                .write_slice(&hdr_and_frame[off..off + len], GuestAddress(addr))
                .unwrap();
            bufs.push((addr, len as u32, false));
            off += len;
        }
        assert_eq!(off, hdr_and_frame.len());
        self.add_chain(&bufs)
    }

    /// `n` single-descriptor writable RX buffers of `size` bytes: (head, addr).
    fn rx_buffers(&mut self, n: usize, size: u32) -> Vec<(u16, u64)> {
        (0..n)
            .map(|_| {
                let a = self.alloc(size);
                (self.add_chain(&[(a, size, true)]), a)
            })
            .collect()
    }

    fn used_idx(&self) -> u16 {
        self.vq.used().idx().load()
    }

    /// Used entries added since the last call: (id, len).
    fn new_used(&mut self) -> Vec<(u32, u32)> {
        let idx = self.used_idx();
        let mut v = Vec::new();
        while self.used_seen != idx {
            let e = self
                .vq
                .used()
                .ring()
                .ref_at(usize::from(self.used_seen % QSIZE))
                .unwrap()
                .load();
            v.push((e.id(), e.len()));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        v
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    }

    /// Set used_event (EVENT_IDX) in the avail ring.
    fn set_used_event(&self, v: u16) {
        let addr = self.vq.avail_addr().0 + 4 + 2 * u64::from(QSIZE);
        self.mem.write_obj(v.to_le(), GuestAddress(addr)).unwrap();
    }
}

fn pair(port: LoopbackPort) -> QueuePair<LoopbackPort> {
    QueuePair::new(port, Arc::new(QueueStats::default()))
}

fn plain_port() -> LoopbackPort {
    LoopbackPort::new(64, 65535, false).unwrap()
}

/// Reassemble a delivered packet from used entries + buffer addresses; returns
/// (num_buffers, frame).
fn collect_rx(d: &Driver, used: &[(u32, u32)], bufs: &[(u16, u64)]) -> (u16, Vec<u8>) {
    let mut bytes = Vec::new();
    for &(id, len) in used {
        let addr = bufs.iter().find(|b| u32::from(b.0) == id).unwrap().1;
        bytes.extend(d.read(addr, len as usize));
    }
    let nb = u16::from_le_bytes([bytes[10], bytes[11]]);
    assert_eq!(&bytes[..10], &[0u8; 10], "flags/gso/csum fields zero");
    (nb, bytes.split_off(VNET_HDR_LEN))
}

mod backend;
mod rx;
mod tx;
