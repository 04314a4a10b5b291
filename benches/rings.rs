//! Ring microbenchmarks without the kernel: one producer and one consumer end of a
//! ring in this process, reserve/write/submit then peek/read/release, per batch size.
//! Throughput is in descriptors (elements) per second.
//!
//! Side by side with libxdp: the same loop written in C over libxdp's inline ring
//! functions (benches/c/rings_libxdp.c) is compiled when the bench starts (`cc -O2`,
//! or `$AFXDP_BENCH_CC $AFXDP_BENCH_CFLAGS` when set; the header `xdp/xsk.h` comes
//! from libxdp-dev) and measured in the same run; tables of both and their ratio are
//! printed at the end. Without libxdp-dev or a C compiler the bench says so and
//! measures the Rust side only.
//!
//! Each side runs in two shapes: with the ring state in local variables (the ring ends
//! moved into the loop's function; the C structs copied into locals), which the
//! compiler keeps in registers, and with the ring state where a program keeps it, in a
//! struct reached through a pointer the compiler knows nothing about (xdpsock's
//! `xsk->tx`, a socket's rings). The Rust side also runs with the bulk methods
//! (`Reservation::write_iter`, `Peeked::iter`) in place of `write(i)`/`read(i)`.
//!
//! `cargo bench --bench rings -- --warm-up-time 1 --measurement-time 2`

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{black_box, BenchmarkId, Criterion, Throughput};

use afxdp_rs::ring::{ConsumerRing, LocalRing, ProducerRing};
use afxdp_rs::XdpDesc;

const RING: u32 = 2048;
/// Indices start this far below the 32-bit wrap-around, on both sides.
const START: u32 = u32::MAX - 4096;
const BATCHES: [u32; 4] = [1, 16, 64, 256];

/// The state of the Rust side: both ends of one ring and the next address to write.
struct Ends {
    prod: ProducerRing<XdpDesc>,
    cons: ConsumerRing<XdpDesc>,
    addr: u64,
}

impl Ends {
    fn new() -> Ends {
        let ring = LocalRing::<XdpDesc>::new(RING, START);
        // The ends keep the ring's memory alive.
        Ends {
            prod: ring.producer(),
            cons: ring.consumer(),
            addr: 0,
        }
    }
}

/// One round: reserve `batch` slots, write a descriptor into each, submit; peek up to
/// `batch` entries, add up their addresses, release. The C side (`one_round`) is the
/// same loop over libxdp's functions.
#[inline(always)]
fn round(
    prod: &mut ProducerRing<XdpDesc>,
    cons: &mut ConsumerRing<XdpDesc>,
    addr: &mut u64,
    batch: u32,
) {
    let mut r = prod.reserve(batch);
    for i in 0..r.len() {
        r.write(
            i,
            XdpDesc {
                addr: *addr,
                len: 64,
                options: 0,
            },
        );
        *addr = addr.wrapping_add(2048);
    }
    r.submit_all();
    let peek = cons.peek(batch);
    let mut sum = 0u64;
    for i in 0..peek.len() {
        sum = sum.wrapping_add(peek.read(i).addr);
    }
    peek.release_all();
    black_box(sum);
}

/// The same round with the bulk methods: `write_iter` and `iter`.
#[inline(always)]
fn round_bulk(
    prod: &mut ProducerRing<XdpDesc>,
    cons: &mut ConsumerRing<XdpDesc>,
    addr: &mut u64,
    batch: u32,
) {
    let mut r = prod.reserve(batch);
    let a = *addr;
    let n = r.write_iter((0..batch as u64).map(|k| XdpDesc {
        addr: a.wrapping_add(k * 2048),
        len: 64,
        options: 0,
    }));
    *addr = a.wrapping_add(n as u64 * 2048);
    r.submit_all();
    let peek = cons.peek(batch);
    let sum = peek.iter().fold(0u64, |s, d| s.wrapping_add(d.addr));
    peek.release_all();
    black_box(sum);
}

/// Two loops of `iters` rounds of `$round`: `$local` on the ring state in local
/// variables (the ends moved into the function: the compiler may keep their fields in
/// registers), `$shared` on ends reached through a reference the compiler knows nothing
/// about (laundered through `black_box`: it may not assume that a write into the ring
/// leaves the ends' fields unchanged).
macro_rules! loops {
    ($local:ident, $shared:ident, $round:ident) => {
        #[inline(never)]
        fn $local(ends: &mut Option<Ends>, batch: u32, iters: u64) {
            let Ends {
                mut prod,
                mut cons,
                mut addr,
            } = ends.take().expect("ends");
            for _ in 0..iters {
                $round(&mut prod, &mut cons, &mut addr, batch);
            }
            *ends = Some(Ends { prod, cons, addr });
        }

        #[inline(never)]
        fn $shared(ends: &mut Option<Ends>, batch: u32, iters: u64) {
            let ends = black_box(ends.as_mut().expect("ends"));
            let mut addr = ends.addr;
            for _ in 0..iters {
                $round(&mut ends.prod, &mut ends.cons, &mut addr, batch);
            }
            ends.addr = addr;
        }
    };
}

loops!(local_write_read, shared_write_read, round);
loops!(local_bulk, shared_bulk, round_bulk);

/// The C side, compiled into a shared object and loaded when the bench starts.
mod libxdp {
    use super::*;

    type New = unsafe extern "C" fn(u32, u32) -> *mut c_void;
    type Free = unsafe extern "C" fn(*mut c_void);
    type Run = unsafe extern "C" fn(*mut c_void, u32, u64);

    pub struct Lib {
        /// How it was compiled: `cc -O2`.
        pub built_with: String,
        new: New,
        free: Free,
        run_local: Run,
        run_shared: Run,
    }

    /// One ring of the C side.
    pub struct Ring<'a> {
        lib: &'a Lib,
        ring: *mut c_void,
    }

    impl Lib {
        /// Compiles benches/c/rings_libxdp.c next to this bench's executable and loads
        /// it, or says why it could not.
        pub fn load() -> Result<Lib, String> {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/c/rings_libxdp.c");
            let src = src.canonicalize().unwrap_or(src);
            let dir = std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(std::env::temp_dir);
            let out: PathBuf = dir.join(format!("librings_libxdp-{}.so", std::process::id()));
            let cc = std::env::var("AFXDP_BENCH_CC").unwrap_or_else(|_| "cc".into());
            let cflags = std::env::var("AFXDP_BENCH_CFLAGS").unwrap_or_else(|_| "-O2".into());
            let build = Command::new(&cc)
                .args(cflags.split_whitespace())
                .args(["-fPIC", "-shared", "-o"])
                .arg(&out)
                .arg(&src)
                .output()
                .map_err(|e| format!("cannot run the C compiler `{cc}`: {e}"))?;
            if !build.status.success() {
                let err = String::from_utf8_lossy(&build.stderr);
                let hint = if err.contains("xsk.h") || err.contains("libbpf.h") {
                    " (xdp/xsk.h or bpf/libbpf.h missing: install libxdp-dev, as \
                     scripts/setup.sh does)"
                } else {
                    ""
                };
                return Err(format!(
                    "`{cc} {cflags}` failed on {}{hint}:\n{}",
                    src.display(),
                    err.trim_end()
                ));
            }
            let path = CString::new(out.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: dlopen of a library we just built from our own source; its only
            // initialisers are the C runtime's.
            let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
            let _ = std::fs::remove_file(&out);
            if handle.is_null() {
                // SAFETY: dlerror returns a C string describing the last failure.
                let why = unsafe { CStr::from_ptr(libc::dlerror()) };
                return Err(format!("dlopen failed: {}", why.to_string_lossy()));
            }
            let sym = |name: &CStr| {
                // SAFETY: a symbol lookup in the handle opened above (never closed).
                let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
                if p.is_null() {
                    Err(format!("symbol {name:?} missing"))
                } else {
                    Ok(p)
                }
            };
            // SAFETY: the symbols are the functions of rings_libxdp.c with exactly these
            // signatures.
            unsafe {
                Ok(Lib {
                    built_with: format!("{cc} {cflags}{}", compiler_version(&cc)),
                    new: std::mem::transmute::<*mut c_void, New>(sym(c"afxdp_libxdp_ring_new")?),
                    free: std::mem::transmute::<*mut c_void, Free>(sym(c"afxdp_libxdp_ring_free")?),
                    run_local: std::mem::transmute::<*mut c_void, Run>(sym(
                        c"afxdp_libxdp_ring_run_local",
                    )?),
                    run_shared: std::mem::transmute::<*mut c_void, Run>(sym(
                        c"afxdp_libxdp_ring_run_shared",
                    )?),
                })
            }
        }

        pub fn ring(&self, size: u32, start: u32) -> Ring<'_> {
            // SAFETY: plain C constructor; a null return is checked.
            let ring = unsafe { (self.new)(size, start) };
            assert!(!ring.is_null(), "afxdp_libxdp_ring_new: out of memory");
            Ring { lib: self, ring }
        }
    }

    /// `, gcc 12.2.0`: the first line of `cc --version`, shortened.
    fn compiler_version(cc: &str) -> String {
        let out = Command::new(cc).arg("--version").output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let line = text.unwrap_or_default();
        let line = line.lines().next().unwrap_or("");
        // "gcc (Debian 12.2.0-14) 12.2.0", "cc (Debian 12.2.0-14) 12.2.0" or "Debian
        // clang version 14.0.6": the name and the last version-like word.
        let name = if line.contains("clang") {
            "clang"
        } else {
            "gcc"
        };
        match line
            .split_whitespace()
            .rfind(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        {
            Some(v)
                if line.contains("clang") || line.starts_with("gcc") || line.starts_with("cc ") =>
            {
                format!(", {name} {v}")
            }
            _ => String::new(),
        }
    }

    impl Ring<'_> {
        /// `iters` rounds with the ring state copied into local variables.
        pub fn run_local(&mut self, batch: u32, iters: u64) {
            // SAFETY: a ring from afxdp_libxdp_ring_new, used by this thread only.
            unsafe { (self.lib.run_local)(self.ring, batch, iters) }
        }

        /// `iters` rounds on the ring state in its struct, reached through a pointer.
        pub fn run_shared(&mut self, batch: u32, iters: u64) {
            // SAFETY: as above.
            unsafe { (self.lib.run_shared)(self.ring, batch, iters) }
        }
    }

    impl Drop for Ring<'_> {
        fn drop(&mut self) {
            // SAFETY: a ring from afxdp_libxdp_ring_new, freed once.
            unsafe { (self.lib.free)(self.ring) }
        }
    }
}

/// The ring state where a program keeps it, in a struct behind a pointer: the
/// criterion rows measure this shape (the paired tables both).
fn produce_consume(c: &mut Criterion, lib: Option<&libxdp::Lib>) {
    let mut group = c.benchmark_group("ring_produce_consume");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        for (name, run) in [
            ("afxdp_rs", shared_write_read as Run),
            ("afxdp_rs_bulk", shared_bulk as Run),
        ] {
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                let mut ends = Some(Ends::new());
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    run(&mut ends, batch, iters);
                    t.elapsed()
                });
            });
        }
        if let Some(lib) = lib {
            group.bench_with_input(BenchmarkId::new("libxdp", batch), &batch, |b, &batch| {
                let mut ring = lib.ring(RING, START);
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    ring.run_shared(batch, iters);
                    t.elapsed()
                });
            });
        }
    }
    group.finish();
}

type Run = fn(&mut Option<Ends>, u32, u64);

/// How long the paired comparison runs per shape and batch size, and how long each
/// chunk is.
const PAIRED_TIME: Duration = Duration::from_secs(2);
const CHUNK: Duration = Duration::from_micros(200);

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The side-by-side tables, one per shape. Criterion measures one side after the
/// other, seconds apart, and on a shared machine the load changes in between; here
/// the sides run in turns of about 200 µs chunks each (the order rotating), so that
/// all see the same conditions. Per side: the median rate of its chunks and the rate
/// of its fastest decile (p90: the chunks least disturbed by other load). Ratios to
/// libxdp: the median of the ratios within each turn (with p25-p75), and the ratio of
/// the p90 rates.
fn paired(lib: &libxdp::Lib) {
    println!(
        "\nring_produce_consume side by side (libxdp side: `{}`): turns of {} µs chunks \
         for {} s per shape and batch size; M descriptors/s, median and p90 of the chunks",
        lib.built_with,
        CHUNK.as_micros(),
        PAIRED_TIME.as_secs()
    );
    type CRun = fn(&mut libxdp::Ring, u32, u64);
    let shapes: [(&str, Run, Run, CRun); 2] = [
        (
            "ring state in local variables",
            local_write_read,
            local_bulk,
            |r, b, i| r.run_local(b, i),
        ),
        (
            "ring state in a struct behind a pointer",
            shared_write_read,
            shared_bulk,
            |r, b, i| r.run_shared(b, i),
        ),
    ];
    for (shape, ours, bulk, theirs) in shapes {
        println!("\n{shape}:");
        println!(
            "{:>5} | {:>11} {:>11} | {:>11} {:>11} | {:>11} {:>11} | {:>17} {:>5} | {:>17} {:>5}",
            "batch",
            "afxdp_rs",
            "p90",
            "bulk",
            "p90",
            "libxdp",
            "p90",
            "ratio (p25-p75)",
            "p90",
            "bulk ratio",
            "p90"
        );
        for batch in BATCHES {
            let mut ends = Some(Ends::new());
            let mut bulk_ends = Some(Ends::new());
            let mut c_ring = lib.ring(RING, START);
            let mut time = |side: usize, iters: u64| {
                let t = Instant::now();
                match side {
                    0 => ours(&mut ends, batch, iters),
                    1 => bulk(&mut bulk_ends, batch, iters),
                    _ => theirs(&mut c_ring, batch, iters),
                }
                t.elapsed().as_nanos() as f64 / iters as f64
            };
            // Rounds per chunk, from a first guess of the sides' speed (warming up too).
            let mut iters = 1u64;
            while (0..3).map(|s| time(s, iters)).sum::<f64>() * (iters as f64)
                < 3.0 * CHUNK.as_nanos() as f64
            {
                iters *= 2;
            }
            let mut ns: [Vec<f64>; 3] = Default::default();
            let (mut ratio, mut bulk_ratio) = (Vec::new(), Vec::new());
            let end = Instant::now() + PAIRED_TIME;
            let mut turn = 0;
            while Instant::now() < end {
                let mut t = [0.0; 3];
                for k in 0..3 {
                    let side = (turn + k) % 3;
                    t[side] = time(side, iters);
                }
                turn += 1;
                for side in 0..3 {
                    ns[side].push(t[side]);
                }
                // ns per round: libxdp's time over ours is our rate over libxdp's.
                ratio.push(t[2] / t[0]);
                bulk_ratio.push(t[2] / t[1]);
            }
            let rate = |ns: f64| batch as f64 / ns * 1e3;
            // The fastest decile of rates is the p10 of times.
            let med = |s: usize| rate(quantile(&ns[s], 0.5));
            let fast = |s: usize| rate(quantile(&ns[s], 0.1));
            let spread = |r: &[f64]| {
                format!(
                    "{:.2} ({:.2}-{:.2})",
                    quantile(r, 0.5),
                    quantile(r, 0.25),
                    quantile(r, 0.75)
                )
            };
            println!(
                "{batch:>5} | {:>11.0} {:>11.0} | {:>11.0} {:>11.0} | {:>11.0} {:>11.0} | \
                 {:>17} {:>5.2} | {:>17} {:>5.2}",
                med(0),
                fast(0),
                med(1),
                fast(1),
                med(2),
                fast(2),
                spread(&ratio),
                fast(0) / fast(2),
                spread(&bulk_ratio),
                fast(1) / fast(2),
            );
        }
    }
}

fn main() {
    let lib = match libxdp::Lib::load() {
        Ok(lib) => Ok(lib),
        Err(why) => {
            let why = format!("{why}\n(the libxdp side is left out; the Rust side runs)");
            eprintln!("rings bench: libxdp side NOT measured: {why}");
            Err(why)
        }
    };
    let mut c = Criterion::default().configure_from_args();
    produce_consume(&mut c, lib.as_ref().ok());
    c.final_summary();
    // `cargo test --benches` runs each benchmark once (--test): no comparison then.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    match &lib {
        Ok(lib) => paired(lib),
        Err(why) => println!("\nrings bench: libxdp side NOT measured: {why}"),
    }
}
