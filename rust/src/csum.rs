//! TCP and UDP checksums as a sending stack leaves them with checksum offload.
//!
//! A stack that offloads the transport checksum (`tx-checksumming`, on by default on
//! veth and most NICs) does not compute it: it puts the one's complement sum of the
//! *pseudo-header* (addresses, protocol, length) in the checksum field and leaves the
//! rest to the device, which sums the segment from the transport header on and stores
//! the complement. Over a veth pair the "device" is the receiving kernel, which knows
//! the packet is unfinished (CHECKSUM_PARTIAL). AF_XDP hands over the bytes alone, so a
//! program forwarding them sends a packet whose checksum is wrong, and the receiver
//! drops it.
//!
//! Such a packet can be recognised exactly by its value: the checksum field holds the
//! pseudo-header sum. [`classify`] tells complete, partial and wrong checksums apart;
//! [`complete_partial`] finishes a partial one in place and leaves every other packet
//! untouched (a wrong checksum stays wrong). IPv4 and IPv6 (with extension headers),
//! TCP and UDP, behind up to two VLAN tags.

/// What the transport checksum of a packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    /// Not TCP or UDP over IPv4 or IPv6, a fragment, or truncated: nothing to check.
    NotApplicable,
    /// UDP over IPv4 with checksum 0: the sender did not compute one.
    Absent,
    /// The checksum verifies.
    Complete,
    /// The field holds the pseudo-header sum: offloaded by the sender, unfinished.
    Partial,
    /// Neither: the packet was changed on the way, or its sender is broken.
    Wrong,
}

impl L4Checksum {
    pub fn as_str(&self) -> &'static str {
        match self {
            L4Checksum::NotApplicable => "not_applicable",
            L4Checksum::Absent => "absent",
            L4Checksum::Complete => "complete",
            L4Checksum::Partial => "partial",
            L4Checksum::Wrong => "wrong",
        }
    }
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Where a packet's transport segment is, and the sum of its pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Offset of the TCP or UDP header.
    start: usize,
    /// Length of the segment (header and payload), as the IP header says.
    len: usize,
    /// Offset of the checksum field.
    field: usize,
    udp: bool,
    ipv6: bool,
    /// One's complement sum of the pseudo-header, folded to 16 bits.
    pseudo: u16,
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// Adds `data` (as big-endian 16-bit words, an odd last byte padded with zero) to a
/// one's complement accumulator.
///
/// The words are summed in the machine's byte order, eight bytes at a time as two
/// 32-bit halves into 64 bits, which no packet can overflow (no carries to chase, so
/// the loop vectorises); 2^32 and 2^16 are both 1 modulo 0xffff, so the result folds to
/// the 16-bit sum, and a one's complement sum in the other byte order is the same sum
/// byte-swapped (RFC 1071).
fn add(acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    let mut sum = 0u64;
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        sum += (v & 0xffff_ffff) + (v >> 32);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        let v = u64::from_ne_bytes(last);
        sum += (v & 0xffff_ffff) + (v >> 32);
    }
    let folded = fold(sum);
    acc + if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    } as u64
}

/// Folds a one's complement accumulator to 16 bits.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Finds the TCP or UDP segment of an Ethernet frame whose first buffer is `p` and
/// whole length `total` (more buffers follow `p` in a multi-buffer packet). The
/// headers, up to the checksum field, must be in `p`.
fn segment(p: &[u8], total: usize) -> Option<Segment> {
    let mut off = 12;
    let mut ethertype = be16(p.get(..14)?, 12);
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        off += 4;
        ethertype = be16(p.get(..off + 2)?, off);
    }
    let l3 = off + 2;
    let s = match ethertype {
        ETH_P_IP => ipv4(p, l3, total),
        ETH_P_IPV6 => ipv6(p, l3, total),
        _ => None,
    }?;
    (s.field + 2 <= p.len()).then_some(s)
}

fn ipv4(p: &[u8], l3: usize, frame: usize) -> Option<Segment> {
    let h = p.get(l3..l3 + 20)?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let total = be16(h, 2) as usize;
    // A fragment (more fragments, or an offset) cannot be checked on its own.
    if be16(h, 6) & 0x3fff != 0 || total < ihl || l3 + total > frame {
        return None;
    }
    let proto = h[9];
    let len = total - ihl;
    let mut acc = add(0, &h[12..20]);
    acc += proto as u64 + len as u64;
    transport(l3 + ihl, len, proto, false, fold(acc))
}

fn ipv6(p: &[u8], l3: usize, frame: usize) -> Option<Segment> {
    let h = p.get(l3..l3 + 40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let payload = be16(h, 4) as usize;
    let end = l3 + 40 + payload;
    if payload == 0 || end > frame {
        return None; // a jumbogram, or truncated
    }
    let mut next = h[6];
    let mut at = l3 + 40;
    loop {
        match next {
            IPPROTO_TCP | IPPROTO_UDP => break,
            // Hop-by-hop and destination options: the pseudo-header stays the same.
            0 | 60 => {
                let e = p.get(at..at + 2)?;
                next = e[0];
                at += (e[1] as usize + 1) * 8;
            }
            // A routing header changes the destination the checksum covers, and a
            // fragment cannot be checked on its own: leave both alone.
            _ => return None,
        }
        if at > end {
            return None;
        }
    }
    let len = end - at;
    let mut acc = add(0, &h[8..40]);
    acc += next as u64 + len as u64;
    transport(at, len, next, true, fold(acc))
}

fn transport(start: usize, len: usize, proto: u8, ipv6: bool, pseudo: u16) -> Option<Segment> {
    let (field, min) = match proto {
        IPPROTO_TCP => (16, 20),
        IPPROTO_UDP => (6, 8),
        _ => return None,
    };
    (len >= min).then_some(Segment {
        start,
        len,
        field: start + field,
        udp: proto == IPPROTO_UDP,
        ipv6,
        pseudo,
    })
}

/// One's complement equality: 0x0000 and 0xffff are both zero.
fn same(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xffff && (a == 0 || b == 0))
}

/// The one's complement sum of bytes `[start, end)` of a packet made of `bufs` in
/// order, folded to 16 bits. A buffer's part that starts at an odd distance from
/// `start` has its bytes in the other halves of the 16-bit words: its sum is
/// byte-swapped (RFC 1071).
fn sum_range<'a>(bufs: impl IntoIterator<Item = &'a [u8]>, start: usize, end: usize) -> u64 {
    let (mut acc, mut at) = (0u64, 0usize);
    for b in bufs {
        let (lo, hi) = (start.max(at), end.min(at + b.len()));
        if lo < hi {
            let part = fold(add(0, &b[lo - at..hi - at]));
            acc += if (lo - start) % 2 == 1 {
                part.swap_bytes()
            } else {
                part
            } as u64;
        }
        at += b.len();
    }
    acc
}

/// What the transport checksum of the Ethernet frame `p` says.
pub fn classify(p: &[u8]) -> L4Checksum {
    classify_buffers(&[p])
}

/// Like [`classify`], for a multi-buffer packet: `bufs` in order, the headers in the
/// first.
pub fn classify_buffers(bufs: &[&[u8]]) -> L4Checksum {
    let total = bufs.iter().map(|b| b.len()).sum();
    let Some(s) = bufs.first().and_then(|first| segment(first, total)) else {
        return L4Checksum::NotApplicable;
    };
    let field = be16(bufs[0], s.field);
    if s.udp && !s.ipv6 && field == 0 {
        return L4Checksum::Absent;
    }
    let sum = fold(s.pseudo as u64 + sum_range(bufs.iter().copied(), s.start, s.start + s.len));
    if sum == 0xffff {
        L4Checksum::Complete
    } else if same(field, s.pseudo) {
        L4Checksum::Partial
    } else {
        L4Checksum::Wrong
    }
}

/// Finishes a partial checksum in place, as the sender's device would have; returns
/// whether the packet changed. Any other packet (complete, wrong, not TCP/UDP) is left
/// exactly as it is. Cheap for packets that are not partial: only the headers are read
/// (a partial one is read once).
pub fn complete_partial(p: &mut [u8]) -> bool {
    complete_partial_buffers(p, &[])
}

/// Like [`complete_partial`], for a multi-buffer packet: `first` (with the headers and
/// the checksum field), then `rest` in order.
pub fn complete_partial_buffers(first: &mut [u8], rest: &[&[u8]]) -> bool {
    let total = first.len() + rest.iter().map(|b| b.len()).sum::<usize>();
    let Some(s) = segment(first, total) else {
        return false;
    };
    let field = be16(first, s.field);
    if !same(field, s.pseudo) || (s.udp && !s.ipv6 && field == 0) {
        return false;
    }
    // The field holds the pseudo-header sum, as the device finds it: the sum of the
    // segment as it is then covers the pseudo-header too. (Rarely a complete checksum
    // equals the pseudo-header sum by chance: such a packet verifies, and stays.)
    let bufs = std::iter::once(&*first).chain(rest.iter().copied());
    let segment_sum = sum_range(bufs, s.start, s.start + s.len);
    if fold(s.pseudo as u64 + segment_sum) == 0xffff {
        return false;
    }
    let mut csum = !fold(segment_sum);
    if s.udp && csum == 0 {
        csum = 0xffff; // UDP sends a computed zero as all ones
    }
    first[s.field..s.field + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests;
