#![allow(unsafe_code)]
//! Flow steering: which of its queue's packets a socket takes.
//!
//! The default XDP program (bpf/xsk_redirect.bpf.c) keeps, per rx queue, a list of
//! [`Rule`]s in its `rules_map`: a packet goes to the queue's socket when any rule
//! matches (a rule matches when all the fields named in `Rule::fields` do), everything
//! else to the kernel stack untouched. [`parse`] turns a filter in tcpdump's words
//! (`"udp and dst port 4789"`) into such a list (in disjunctive normal form),
//! [`describe`] prints one back, and [`RulesMap`] writes a queue's list into the
//! program's map, replacing it at once.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::{Error, ErrorKind};
use crate::sys::bpf;

mod describe;
mod parse;
#[cfg(test)]
mod tests;

pub use describe::describe;
pub use parse::parse;

/// Which fields of a Rule must match (bits of `Rule::fields`).
pub const F_ETHERTYPE: u32 = 1 << 0; // ethertype after any VLAN tags (0x0800, 0x86dd, 0x0806, any u16)
pub const F_VLAN: u32 = 1 << 1; // the frame carries an 802.1Q/802.1ad tag
pub const F_VLAN_ID: u32 = 1 << 2; // ...whose outer VLAN id is `vlan`
pub const F_PROTO: u32 = 1 << 3; // IP protocol / IPv6 next header (6 tcp, 17 udp, 1 icmp, 58 icmp6, 132 sctp, any u8)
pub const F_SRC: u32 = 1 << 4; // source address under src_mask equals src
pub const F_DST: u32 = 1 << 5; // destination address under dst_mask equals dst
pub const F_SPORT: u32 = 1 << 6; // TCP/UDP source port
pub const F_DPORT: u32 = 1 << 7; // TCP/UDP destination port
pub const MAX_RULES: usize = 16;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rule {
    pub fields: u32,
    /// Network byte order (as it is in the packet): store `ethertype.to_be()`.
    pub ethertype: u16,
    /// VLAN id 0..=4095, host order.
    pub vlan: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
    /// Network byte order: `port.to_be()`.
    pub sport: u16,
    pub dport: u16,
    /// Addresses as four u32 words each holding 4 address bytes in packet (network)
    /// order: `u32::from_ne_bytes([a,b,c,d])` of consecutive bytes. IPv4 uses word 0
    /// only (mask words 1..3 zero). Masks likewise (prefix length -> leading one bits in
    /// packet byte order). `src` is always pre-masked (src & src_mask).
    pub src: [u32; 4],
    pub src_mask: [u32; 4],
    pub dst: [u32; 4],
    pub dst_mask: [u32; 4],
}

/// A filter expression that can't be turned into rules; `message` says where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

pub(super) const ETH_IP: u16 = 0x0800;
pub(super) const ETH_IP6: u16 = 0x86dd;
pub(super) const ETH_ARP: u16 = 0x0806;

pub(super) const ETH_NAMES: [&str; 3] = ["ip", "ip6", "arp"];
pub(super) const ETH_VALUES: [u16; 3] = [ETH_IP, ETH_IP6, ETH_ARP];
pub(super) const PROTO_NAMES: [&str; 9] = [
    "icmp", "igmp", "tcp", "udp", "gre", "esp", "ah", "icmp6", "sctp",
];
pub(super) const PROTO_VALUES: [u8; 9] = [1, 2, 6, 17, 47, 50, 51, 58, 132];

pub(super) fn host16(v: u16) -> u32 {
    u16::from_be(v).into()
}

/// The value named `name` (case-insensitive, tcpdump's optional `\` escape allowed).
pub(super) fn by_name<T: Copy>(names: &[&str], values: &[T], name: &str) -> Option<T> {
    let name = name.trim_start_matches('\\');
    let i = names.iter().position(|n| n.eq_ignore_ascii_case(name))?;
    Some(values[i])
}

pub(super) fn name_of<T: PartialEq>(
    names: &[&'static str],
    values: &[T],
    v: T,
) -> Option<&'static str> {
    Some(names[values.iter().position(|x| *x == v)?])
}

pub(super) fn eth_word(e: u16) -> String {
    name_of(&ETH_NAMES, &ETH_VALUES, e).map_or(format!("0x{e:04x}"), str::to_string)
}

pub(super) fn proto_word(p: u8) -> String {
    name_of(&PROTO_NAMES, &PROTO_VALUES, p).map_or(p.to_string(), str::to_string)
}

pub(super) fn to_words(b: [u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

pub(super) fn to_bytes(w: [u32; 4]) -> [u8; 16] {
    std::array::from_fn(|i| w[i / 4].to_ne_bytes()[i % 4])
}

/// `RuleTable::flags`: the program puts the time each packet reached XDP
/// (CLOCK_MONOTONIC nanoseconds, 8 bytes) in its metadata, right before the packet.
pub const STAMP: u32 = 1 << 0;

/// `RuleTable::flags`: a socket is registered on the queue. The program does not read
/// it (an entry without rules takes every packet, as no entry does); it tells
/// `afxdp status` which queues are taken.
pub const TAKEN: u32 = 1 << 1;

/// What one rx queue's entry of `rules_map` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRules {
    pub queue: u32,
    /// [`STAMP`], [`TAKEN`].
    pub flags: u32,
    /// Empty: every packet of the queue.
    pub rules: Vec<Rule>,
}

/// A queue's rules as the program's map holds them (`struct afxdp_rules`).
#[repr(C)]
#[derive(Clone, Copy)]
struct RuleTable {
    count: u32,
    flags: u32,
    rules: [Rule; MAX_RULES],
}

/// The default program's `rules_map`: per rx queue, the rules of its socket.
#[derive(Debug)]
pub struct RulesMap {
    fd: OwnedFd,
}

impl RulesMap {
    /// Takes the descriptor of a `rules_map`.
    pub fn from_fd(fd: OwnedFd) -> Self {
        RulesMap { fd }
    }

    /// Replaces the rules of queue `queue` at once (empty: every packet of the queue),
    /// with `flags` ([`STAMP`]).
    pub fn set(&self, queue: u32, rules: &[Rule], flags: u32) -> crate::error::Result<()> {
        if rules.len() > MAX_RULES {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("{} rules: a socket has at most {MAX_RULES}", rules.len()),
            ));
        }
        let mut table = RuleTable {
            count: rules.len() as u32,
            flags,
            rules: [Rule::default(); MAX_RULES],
        };
        table.rules[..rules.len()].copy_from_slice(rules);
        bpf::map_update(self.fd.as_fd(), &queue.to_ne_bytes(), table.as_bytes())
            .map_err(|e| Error::os(format!("setting the flow rules of queue {queue}"), e))
    }

    /// Records that queue `queue` has a socket, leaving its rules as they are (none
    /// yet: an entry that takes every packet).
    pub fn mark_taken(&self, queue: u32) -> crate::error::Result<()> {
        let mut table = RuleTable::empty();
        let found = bpf::map_lookup(self.fd.as_fd(), &queue.to_ne_bytes(), table.as_bytes_mut())
            .map_err(|e| Error::os(format!("reading the flow rules of queue {queue}"), e))?;
        if found && table.flags & TAKEN != 0 {
            return Ok(());
        }
        table.flags |= TAKEN;
        bpf::map_update(self.fd.as_fd(), &queue.to_ne_bytes(), table.as_bytes())
            .map_err(|e| Error::os(format!("setting the flow rules of queue {queue}"), e))
    }

    /// Every queue's entry, in queue order.
    pub fn entries(&self) -> crate::error::Result<Vec<QueueRules>> {
        let keys = bpf::map_keys_u32(self.fd.as_fd())
            .map_err(|e| Error::os("listing the queues of the flow rules", e))?;
        let mut out = Vec::new();
        for queue in keys {
            let mut table = RuleTable::empty();
            let found =
                bpf::map_lookup(self.fd.as_fd(), &queue.to_ne_bytes(), table.as_bytes_mut())
                    .map_err(|e| {
                        Error::os(format!("reading the flow rules of queue {queue}"), e)
                    })?;
            if found {
                let n = (table.count as usize).min(MAX_RULES);
                out.push(QueueRules {
                    queue,
                    flags: table.flags,
                    rules: table.rules[..n].to_vec(),
                });
            }
        }
        out.sort_by_key(|q| q.queue);
        Ok(out)
    }

    /// Removes the rules of queue `queue` (a missing entry is fine).
    pub fn clear(&self, queue: u32) {
        let _ = bpf::map_delete(self.fd.as_fd(), &queue.to_ne_bytes());
    }
}

impl AsFd for RulesMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl RuleTable {
    fn empty() -> Self {
        RuleTable {
            count: 0,
            flags: 0,
            rules: [Rule::default(); MAX_RULES],
        }
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in as_bytes; any bytes are a valid RuleTable (integers only), so
        // the kernel may write any value into them.
        unsafe {
            std::slice::from_raw_parts_mut(
                (self as *mut RuleTable).cast::<u8>(),
                std::mem::size_of::<RuleTable>(),
            )
        }
    }

    fn as_bytes(&self) -> &[u8] {
        // SAFETY: RuleTable is repr(C) plain old data of u32, u16 and u8 fields laid out
        // without padding (checked by the layout test), so every byte is initialised.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const RuleTable).cast::<u8>(),
                std::mem::size_of::<RuleTable>(),
            )
        }
    }
}
