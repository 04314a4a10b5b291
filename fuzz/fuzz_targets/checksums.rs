//! Checksums on arbitrary bytes: classify never panics, and complete_partial changes
//! at most the two bytes of a partial checksum, after which the packet is complete.
#![no_main]

use afxdp_rs::csum::{classify, complete_partial, L4Checksum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let before = classify(data);
    let mut p = data.to_vec();
    let changed = complete_partial(&mut p);
    let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != data[i]).collect();
    if changed {
        assert_eq!(before, L4Checksum::Partial, "only a partial checksum is completed");
        assert!(diff.len() <= 2 && diff.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(classify(&p), L4Checksum::Complete);
    } else {
        assert!(diff.is_empty(), "a packet left alone is unchanged");
        assert_ne!(before, L4Checksum::Partial, "a partial checksum is always completed");
    }
});
