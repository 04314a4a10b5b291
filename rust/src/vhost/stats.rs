//! Per queue-pair counters. Lock-free so a stats/metrics thread can read them while the
//! worker thread owns the queue pair.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a guest descriptor chain was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// The chain yielded no descriptor: head index out of range, unreadable descriptor table,
    /// or a malformed indirect descriptor.
    Empty,
    /// The chain stopped while its last descriptor still had NEXT set: a loop (hit the
    /// queue-size TTL), a `next` index outside the table, or an unreadable descriptor.
    Truncated,
    /// Write-only descriptor in a TX (device-readable) chain, or read-only in an RX chain.
    WrongDirection,
    /// A buffer is not fully inside guest memory.
    OutOfMemory,
    /// Too short to hold the virtio-net header (+ an Ethernet header for TX).
    TooShort,
    /// Total length overflows u32.
    TooLong,
}

#[derive(Default, Debug)]
pub struct QueueStats {
    // guest -> port
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_drop_bad_chain: AtomicU64,
    pub tx_drop_too_large: AtomicU64,
    pub tx_drop_port_refused: AtomicU64,
    /// Times the guest TX queue was paused because the port had no room (not a drop).
    pub tx_port_full: AtomicU64,
    // port -> guest
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// RX descriptor chains returned to the guest unused because they were malformed.
    pub rx_bad_chain: AtomicU64,
    pub rx_drop_too_large: AtomicU64,
    /// Times RX stopped because the guest had no (or not enough) buffers; the packet stayed
    /// in the port (not a drop).
    pub rx_no_buffers: AtomicU64,
    /// Failures to access the used/avail rings themselves (broken ring addresses).
    pub ring_errors: AtomicU64,
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drop_bad_chain: u64,
    pub tx_drop_too_large: u64,
    pub tx_drop_port_refused: u64,
    pub tx_port_full: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_bad_chain: u64,
    pub rx_drop_too_large: u64,
    pub rx_no_buffers: u64,
    pub ring_errors: u64,
}

#[inline]
pub(crate) fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl QueueStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            tx_packets: l(&self.tx_packets),
            tx_bytes: l(&self.tx_bytes),
            tx_drop_bad_chain: l(&self.tx_drop_bad_chain),
            tx_drop_too_large: l(&self.tx_drop_too_large),
            tx_drop_port_refused: l(&self.tx_drop_port_refused),
            tx_port_full: l(&self.tx_port_full),
            rx_packets: l(&self.rx_packets),
            rx_bytes: l(&self.rx_bytes),
            rx_bad_chain: l(&self.rx_bad_chain),
            rx_drop_too_large: l(&self.rx_drop_too_large),
            rx_no_buffers: l(&self.rx_no_buffers),
            ring_errors: l(&self.ring_errors),
        }
    }
}
