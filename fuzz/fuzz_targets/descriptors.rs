//! Descriptor validation: whatever (geometry, address, length) comes in, the check
//! accepts exactly the descriptors that lie inside one frame of the UMEM.
#![no_main]

use afxdp_rs::umem::desc_in_bounds;
use afxdp_rs::UmemConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, u16, u64, u32)| {
    let (big, count, addr, len) = input;
    let cfg = UmemConfig {
        frame_size: if big { 4096 } else { 2048 },
        frame_count: count as u32,
        headroom: 0,
    };
    let ok = desc_in_bounds(&cfg, addr, len);
    let fs = cfg.frame_size as u128;
    let (a, l) = (addr as u128, len as u128);
    let size = fs * cfg.frame_count as u128;
    let reference = a + l <= size && (l == 0 || a / fs == (a + l - 1) / fs);
    assert_eq!(ok, reference, "({addr}, {len}) in {cfg:?}");
    if ok && len > 0 {
        // The whole range is one frame, inside the area.
        assert!(a + l <= size);
        assert_eq!(a / fs, (a + l - 1) / fs);
    }
});
