//! What the vhost fuzz targets share: reading the fuzzer's bytes as fields, a guest
//! memory of fuzzer-chosen regions, a snapshot of it, and a port's unused half.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Reads fuzzer bytes as little-endian fields, zeros once they run out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}

/// Guest memory: the queue's region at 0, and up to two more (`flags & 3`, at most
/// 2) of fuzzer-chosen sizes at fuzzer-chosen places; holes between them are not
/// memory. None when the regions cannot be mapped.
pub fn guest_memory(
    flags: u8,
    b: &mut Input<'_>,
) -> Option<(GuestMemoryMmap, Vec<(GuestAddress, usize)>)> {
    let mut regions = vec![(GuestAddress(0), 0x1_0000usize)];
    for i in 0..(flags & 3).min(2) {
        let base = 0x2_0000 + u64::from(b.u8()) * 0x1000 + u64::from(i) * 0x10_0000;
        let size = (usize::from(b.u8()) + 1) * 0x100;
        regions.push((GuestAddress(base), size));
    }
    let mem = GuestMemoryMmap::<()>::from_ranges(&regions).ok()?;
    Some((mem, regions))
}

/// Every byte of every region.
pub fn snapshot(mem: &GuestMemoryMmap, regions: &[(GuestAddress, usize)]) -> Vec<Vec<u8>> {
    regions
        .iter()
        .map(|&(base, size)| {
            let mut v = vec![0u8; size];
            mem.read_slice(&mut v, base).unwrap();
            v
        })
        .collect()
}
