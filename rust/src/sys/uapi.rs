//! The AF_XDP part of the kernel ABI (linux/if_xdp.h): constants and the structures the
//! kernel reads and writes byte for byte. Plain data only; the calls are in
//! [`super::xsk`].

pub const AF_XDP: libc::c_int = 44;
pub const SOL_XDP: libc::c_int = 283;

// setsockopt/getsockopt names at SOL_XDP.
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
pub const XDP_OPTIONS: libc::c_int = 8;

// sxdp_flags of bind().
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Multi-buffer: a packet may span several descriptors (Linux 6.6 and later).
pub const XDP_USE_SG: u16 = 1 << 4;

/// `xdp_desc.options`: more descriptors of the same packet follow this one.
pub const XDP_PKT_CONTD: u32 = 1 << 0;

/// Set by the kernel in a ring's flags word when it needs a system call to go on.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
/// `xdp_options.flags`: the socket runs in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

// mmap offsets of the four rings.
pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// One rx or tx descriptor: where in the UMEM the packet is and how long it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// Where the parts of one ring are inside its mapping.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `XDP_MMAP_OFFSETS`: the layout of the four rings.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `XDP_UMEM_REG`: the packet area and its frame geometry.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// The address an AF_XDP socket binds to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// The kernel's per-socket counters (`XDP_STATISTICS`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Packets dropped for reasons other than invalid descriptors (e.g. no fill buffer).
    pub rx_dropped: u64,
    /// Invalid descriptors on the rx ring. Current kernels never count here: a bad
    /// fill-ring address is skipped and counted on the fill ring, which is not reported.
    pub rx_invalid_descs: u64,
    /// Tx descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
}

/// `XDP_OPTIONS`: what the kernel made of the bind.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpOptions {
    pub flags: u32,
}
