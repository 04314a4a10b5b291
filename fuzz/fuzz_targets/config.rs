//! Configuration parsing: any sizes and mode strings either validate into a usable
//! configuration or give an InvalidConfig error naming the value; nothing panics.
#![no_main]

use afxdp_rs::socket::{BindMode, SocketConfig};
use afxdp_rs::{ErrorKind, UmemConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: ([u32; 7], String)| {
    let ([fs, fc, hr, fill, comp, rx, tx], mode) = input;
    if let Err(e) = BindMode::parse(&mode) {
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.message().contains("bind="));
    }
    let cfg = SocketConfig {
        umem: UmemConfig {
            frame_size: fs,
            frame_count: fc,
            headroom: hr,
        },
        fill_size: fill,
        comp_size: comp,
        rx_size: rx,
        tx_size: tx,
        ..SocketConfig::default()
    };
    match cfg.validate() {
        Ok(()) => {
            assert!(fs == 2048 || fs == 4096);
            assert!(fc > 0 && hr <= fs / 2);
            assert!(fill.is_power_of_two() && comp.is_power_of_two());
            assert!(rx == 0 || rx.is_power_of_two());
            assert!(tx == 0 || tx.is_power_of_two());
            assert!(rx > 0 || tx > 0);
            assert_eq!(cfg.umem.len(), fs as usize * fc as usize);
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(e.message().contains('='), "{}", e.message());
        }
    }
});
