//! End-to-end benchmarks through the Rust API on a veth test bed the bench creates:
//! rxdrop, txonly and l2fwd (MAC swap), 64-byte packets, native and skb XDP mode, in
//! packets per second.
//!
//! The process first moves into a private network namespace (unshare), so the veth
//! pair disappears with it, whatever happens. Needs root; run with
//! `sudo cargo bench --bench e2e`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use afxdp_rs::program::XdpMode;
use afxdp_rs::{SocketConfig, Steering, XskSocket};

const INNER: &str = "xdp0";
const PEER: &str = "xdp1";

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("running ip (iproute2)");
    assert!(status.success(), "ip {args:?} failed");
}

/// Enters a private network namespace and builds the veth pair in it.
fn test_bed() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("e2e benchmarks need root (network namespaces, XDP): run with sudo");
        return false;
    }
    // SAFETY: unshare(CLONE_NEWNET) only changes this thread's network namespace, and
    // benchmarks run on this thread (threads started later inherit it).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    ip(&["link", "add", INNER, "type", "veth", "peer", "name", PEER]);
    ip(&["link", "set", INNER, "address", "02:00:00:00:00:01", "up"]);
    ip(&["link", "set", PEER, "address", "02:00:00:00:00:02", "up"]);
    true
}

fn packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    p[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    p
}

fn config(mode: XdpMode, rx: bool, tx: bool) -> SocketConfig {
    SocketConfig {
        steering: Steering::DefaultProgram(mode),
        rx_size: if rx { 2048 } else { 0 },
        tx_size: if tx { 2048 } else { 0 },
        ..SocketConfig::default()
    }
}

/// A full-rate generator on the peer end, until dropped.
struct Generator {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Generator {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut sock = XskSocket::open(PEER, 0, config(XdpMode::Auto, false, true)).unwrap();
        let thread = thread::spawn(move || {
            let p = packet();
            afxdp_rs::tools::txonly(&mut sock, &p, 64, Duration::from_secs(3600), &*flag).unwrap();
        });
        Generator {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn e2e(c: &mut Criterion) {
    if !test_bed() {
        return;
    }
    let mut group = c.benchmark_group("veth_64B");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    let p = packet();
    for (name, mode) in [("native", XdpMode::Native), ("skb", XdpMode::Skb)] {
        group.bench_function(BenchmarkId::new("txonly", name), |b| {
            let mut sock = XskSocket::open(INNER, 0, config(mode, false, true)).unwrap();
            let batch = vec![p.as_slice(); 64];
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut sent = 0u64;
                while sent < iters {
                    let n = (iters - sent).min(64) as usize;
                    sent += sock.send(&batch[..n], None).unwrap() as u64;
                }
                sock.flush(Some(Duration::from_secs(1))).unwrap();
                start.elapsed()
            });
        });
        group.bench_function(BenchmarkId::new("rxdrop", name), |b| {
            let mut sock = XskSocket::open(INNER, 0, config(mode, true, false)).unwrap();
            let _gen = Generator::start();
            let mut frames = sock.rx_frames(64);
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut got = 0u64;
                while got < iters {
                    got += sock.recv(64, &mut frames).unwrap() as u64;
                    sock.recycle(&mut frames);
                }
                start.elapsed()
            });
        });
        group.bench_function(BenchmarkId::new("l2fwd", name), |b| {
            let mut sock = XskSocket::open(INNER, 0, config(mode, true, true)).unwrap();
            let _gen = Generator::start();
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut fwd = 0u64;
                while fwd < iters {
                    fwd += sock.forward_back(64, true).unwrap() as u64;
                }
                start.elapsed()
            });
        });
    }
    group.finish();
    steering(c);
}

/// The cost of flow rules in the XDP program, per packet: the program run by the
/// kernel on a test packet (BPF_PROG_TEST_RUN) with no rules, and with 1 and 8 rules of
/// which the last matches (every rule is evaluated).
fn steering(c: &mut Criterion) {
    let mut group = c.benchmark_group("xdp_program");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(2));
    let p = packet();
    let mut sock = XskSocket::open(INNER, 0, config(XdpMode::Native, true, false)).unwrap();
    for n in [0usize, 1, 8] {
        let filter: Vec<String> = (0..n)
            .map(|i| {
                if i + 1 == n {
                    "ether proto 0x88b5".to_string()
                } else {
                    format!("ether proto 0x{:04x}", 0x1000 + i)
                }
            })
            .collect();
        let rules = if n == 0 {
            Vec::new()
        } else {
            afxdp_rs::flow::parse(&filter.join(" or ")).unwrap()
        };
        sock.set_match(&rules).unwrap();
        let prog = std::sync::Arc::clone(sock.program().unwrap());
        group.bench_function(BenchmarkId::new("rules", n), |b| {
            b.iter_custom(|iters| {
                let (verdict, ns) = prog
                    .test_run(&p, iters.min(u32::MAX as u64) as u32)
                    .unwrap();
                assert_ne!(verdict, 1, "the packet matched: not XDP_DROP/ABORTED");
                Duration::from_nanos(ns as u64 * iters)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
