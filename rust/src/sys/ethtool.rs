//! The ethtool ioctl beyond queue counts: a device's offload features by name (as
//! `ethtool -k` shows them) and setting them (`ethtool -K`), and a veth device's
//! statistics, which name its peer.
#![allow(unsafe_code)]

use std::io;

use super::netdev::ethtool_raw;

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_STATS: u32 = 1;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// A request followed by a variable-length array, laid out as the kernel expects
/// (`struct ethtool_gstrings`, `ethtool_gfeatures`, ...): a header of `u32` words, then
/// the data, in one 8-byte-aligned buffer.
struct Request {
    words: Vec<u64>,
}

impl Request {
    fn new(header: &[u32], data_bytes: usize) -> Self {
        let bytes = header.len() * 4 + data_bytes;
        let mut words = vec![0u64; bytes.div_ceil(8)];
        let b = Self::bytes_mut(&mut words);
        for (i, h) in header.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&h.to_ne_bytes());
        }
        Request { words }
    }

    fn bytes_mut(words: &mut [u64]) -> &mut [u8] {
        let len = std::mem::size_of_val(words);
        // SAFETY: u64 storage seen as bytes: any byte pattern is valid for both, the
        // length is the storage's, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), len) }
    }

    fn bytes(&self) -> &[u8] {
        let len = std::mem::size_of_val(self.words.as_slice());
        // SAFETY: as above, read only.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), len) }
    }

    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(
            self.bytes()[offset..offset + 4]
                .try_into()
                .expect("4 bytes"),
        )
    }

    /// Runs the request on `ifname`.
    ///
    /// # Safety
    /// The buffer must be laid out as the kernel's structure for the command in its
    /// first word, with the lengths in it no larger than the buffer.
    unsafe fn run(&mut self, ifname: &str) -> io::Result<()> {
        // SAFETY: forwarded from the caller; the pointer covers the whole buffer, which
        // lives for the call.
        unsafe { ethtool_raw(ifname, self.words.as_mut_ptr().cast()) }
    }
}

/// How many strings a string set has (ETHTOOL_GSSET_INFO).
fn set_len(ifname: &str, set: u32) -> io::Result<usize> {
    // struct ethtool_sset_info { cmd, reserved, u64 sset_mask, u32 data[] }
    let mut r = Request::new(&[ETHTOOL_GSSET_INFO, 0, 1 << set, 0], 4);
    // SAFETY: header, 64-bit mask with one bit set, room for one length.
    unsafe { r.run(ifname) }?;
    // Bits left in sset_mask say which sets the device has.
    let mask = r.u32_at(8) as u64 | (r.u32_at(12) as u64) << 32;
    if mask & (1 << set) == 0 {
        return Ok(0);
    }
    Ok(r.u32_at(16) as usize)
}

/// The names of a string set (ETHTOOL_GSTRINGS).
fn strings(ifname: &str, set: u32) -> io::Result<Vec<String>> {
    let n = set_len(ifname, set)?;
    // struct ethtool_gstrings { cmd, string_set, len, u8 data[] }
    let mut r = Request::new(&[ETHTOOL_GSTRINGS, set, n as u32], n * ETH_GSTRING_LEN);
    // SAFETY: header and n strings of ETH_GSTRING_LEN bytes.
    unsafe { r.run(ifname) }?;
    let data = &r.bytes()[12..12 + n * ETH_GSTRING_LEN];
    Ok(data
        .chunks(ETH_GSTRING_LEN)
        .map(|s| {
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        })
        .collect())
}

/// A device's offload features: their names and whether each is on and can change.
#[derive(Debug, Clone)]
pub struct Features {
    names: Vec<String>,
    active: Vec<bool>,
    changeable: Vec<bool>,
}

impl Features {
    /// Whether feature `name` (e.g. "tx-checksum-ip-generic") is on.
    pub fn active(&self, name: &str) -> bool {
        self.index(name).is_some_and(|i| self.active[i])
    }

    /// The features of `names` that are on and can be turned off.
    pub fn on_and_changeable<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| {
                self.index(n)
                    .is_some_and(|i| self.active[i] && self.changeable[i])
            })
            .collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Reads the offload features of `ifname` (ETHTOOL_GFEATURES).
pub fn features(ifname: &str) -> io::Result<Features> {
    let names = strings(ifname, ETH_SS_FEATURES)?;
    let blocks = names.len().div_ceil(32);
    // struct ethtool_gfeatures { cmd, size, { available, requested, active,
    // never_changed } [size] }
    let mut r = Request::new(&[ETHTOOL_GFEATURES, blocks as u32], blocks * 16);
    // SAFETY: header and `blocks` four-word blocks.
    unsafe { r.run(ifname) }?;
    let bit = |i: usize, field: usize| r.u32_at(8 + (i / 32) * 16 + field * 4) >> (i % 32) & 1 != 0;
    let active = (0..names.len()).map(|i| bit(i, 2)).collect();
    let changeable = (0..names.len()).map(|i| bit(i, 0) && !bit(i, 3)).collect();
    Ok(Features {
        names,
        active,
        changeable,
    })
}

/// Turns the features `off` of `ifname` off (ETHTOOL_SFEATURES); returns the features
/// now active among them (the kernel may refuse or tie some to others).
pub fn turn_off(ifname: &str, off: &[&str]) -> io::Result<Vec<String>> {
    let names = strings(ifname, ETH_SS_FEATURES)?;
    let blocks = names.len().div_ceil(32);
    // struct ethtool_sfeatures { cmd, size, { valid, requested } [size] }
    let mut r = Request::new(&[ETHTOOL_SFEATURES, blocks as u32], blocks * 8);
    for name in off {
        if let Some(i) = names.iter().position(|n| n == name) {
            let at = 8 + (i / 32) * 8;
            let valid = r.u32_at(at) | 1 << (i % 32);
            Request::bytes_mut(&mut r.words)[at..at + 4].copy_from_slice(&valid.to_ne_bytes());
            // requested stays 0: off
        }
    }
    // SAFETY: header and `blocks` two-word blocks.
    unsafe { r.run(ifname) }?;
    let now = features(ifname)?;
    Ok(off
        .iter()
        .filter(|n| now.active(n))
        .map(|n| n.to_string())
        .collect())
}

/// The interface index of a veth device's peer, as the veth driver reports it in its
/// statistics (`peer_ifindex`); None for other devices. The index is in the peer's
/// network namespace, which may not be the caller's.
pub fn veth_peer_index(ifname: &str) -> Option<u32> {
    let names = strings(ifname, ETH_SS_STATS).ok()?;
    let at = names.iter().position(|n| n == "peer_ifindex")?;
    let n = names.len();
    // struct ethtool_stats { cmd, n_stats, u64 data[] }
    let mut r = Request::new(&[ETHTOOL_GSTATS, n as u32], n * 8);
    // SAFETY: header and n 64-bit counters.
    unsafe { r.run(ifname) }.ok()?;
    let v = u64::from_ne_bytes(r.bytes()[8 + at * 8..16 + at * 8].try_into().ok()?);
    u32::try_from(v).ok()
}
