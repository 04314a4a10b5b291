//! Ring microbenchmarks without the kernel: one producer and one consumer end of a
//! ring in this process, reserve/write/submit then peek/read/release, per batch size.
//! Throughput is in descriptors (elements) per second.
//!
//! Side by side with libxdp: the same loop written in C over libxdp's inline ring
//! functions (benches/c/rings_libxdp.c) is compiled when the bench starts (`cc -O2`,
//! or `$AFXDP_BENCH_CC $AFXDP_BENCH_CFLAGS` when set; the header `xdp/xsk.h` comes
//! from libxdp-dev) and measured in the same run; a table of both and their ratio is
//! printed at the end. Without libxdp-dev or a C compiler the bench says so and
//! measures the Rust side only.
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

/// `iters` rounds of the loop: reserve `batch` slots, write a descriptor into each,
/// submit; peek up to `batch` entries, add up their addresses, release. The C side
/// (`afxdp_libxdp_ring_run`) is the same loop over libxdp's functions.
///
/// The ring ends are reached through references the compiler knows nothing about
/// (laundered through `black_box`), as the ends of a socket's rings in a struct are:
/// it may not assume that a write into the ring leaves the ends' fields unchanged. The
/// C side keeps its ring state in local variables, its best case.
#[inline(never)]
fn run_afxdp(
    prod: &mut ProducerRing<XdpDesc>,
    cons: &mut ConsumerRing<XdpDesc>,
    addr: &mut u64,
    batch: u32,
    iters: u64,
) {
    let prod = black_box(prod);
    let cons = black_box(cons);
    let mut a = *addr;
    for _ in 0..iters {
        let mut r = prod.reserve(batch);
        for i in 0..r.len() {
            r.write(
                i,
                XdpDesc {
                    addr: a,
                    len: 64,
                    options: 0,
                },
            );
            a = a.wrapping_add(2048);
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
    *addr = a;
}

/// The C side, compiled into a shared object and loaded when the bench starts.
mod libxdp {
    use super::*;

    type New = unsafe extern "C" fn(u32, u32) -> *mut c_void;
    type Free = unsafe extern "C" fn(*mut c_void);
    type Run = unsafe extern "C" fn(*mut c_void, u32, u64) -> u64;

    pub struct Lib {
        /// How it was compiled: `cc -O2`.
        pub built_with: String,
        new: New,
        free: Free,
        run: Run,
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
                    run: std::mem::transmute::<*mut c_void, Run>(sym(c"afxdp_libxdp_ring_run")?),
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
        pub fn run(&mut self, batch: u32, iters: u64) -> u64 {
            // SAFETY: a ring from afxdp_libxdp_ring_new, used by this thread only.
            unsafe { (self.lib.run)(self.ring, batch, iters) }
        }
    }

    impl Drop for Ring<'_> {
        fn drop(&mut self) {
            // SAFETY: a ring from afxdp_libxdp_ring_new, freed once.
            unsafe { (self.lib.free)(self.ring) }
        }
    }
}

fn produce_consume(c: &mut Criterion, lib: Option<&libxdp::Lib>) {
    let mut group = c.benchmark_group("ring_produce_consume");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("afxdp_rs", batch), &batch, |b, &batch| {
            let ring = LocalRing::<XdpDesc>::new(RING, START);
            let mut prod = ring.producer();
            let mut cons = ring.consumer();
            let mut addr = 0u64;
            b.iter_custom(|iters| {
                let t = Instant::now();
                run_afxdp(&mut prod, &mut cons, &mut addr, batch, iters);
                t.elapsed()
            });
        });
        if let Some(lib) = lib {
            group.bench_with_input(BenchmarkId::new("libxdp", batch), &batch, |b, &batch| {
                let mut ring = lib.ring(RING, START);
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    black_box(ring.run(batch, iters));
                    t.elapsed()
                });
            });
        }
    }
    group.finish();
}

/// How long the paired comparison runs per batch size, and how long each chunk is.
const PAIRED_TIME: Duration = Duration::from_secs(2);
const CHUNK: Duration = Duration::from_micros(200);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The side-by-side table. Criterion measures one side after the other, seconds apart,
/// and on a shared machine the load changes in between; here the two sides run in
/// alternating chunks of about 200 µs (which one goes first alternates too), so that
/// both see the same conditions, and the ratio is the median of the ratios of
/// neighbouring chunks. The rates are the medians of each side's chunks.
fn paired(lib: &libxdp::Lib) {
    println!(
        "\nring_produce_consume side by side (libxdp side: `{}`): alternating {} µs chunks \
         for {} s per batch size, medians",
        lib.built_with,
        CHUNK.as_micros(),
        PAIRED_TIME.as_secs()
    );
    println!(
        "{:>6} {:>20} {:>25} {:>17}",
        "batch", "afxdp_rs (M desc/s)", "libxdp inline (M desc/s)", "ratio (p25-p75)"
    );
    for batch in BATCHES {
        let ring = LocalRing::<XdpDesc>::new(RING, START);
        let mut prod = ring.producer();
        let mut cons = ring.consumer();
        let mut addr = 0u64;
        let mut c_ring = lib.ring(RING, START);
        let mut ours = |iters| {
            let t = Instant::now();
            run_afxdp(&mut prod, &mut cons, &mut addr, batch, iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        };
        let mut theirs = |iters| {
            let t = Instant::now();
            black_box(c_ring.run(batch, iters));
            t.elapsed().as_nanos() as f64 / iters as f64
        };
        // Rounds per chunk, from a first guess of both sides' speed (warming up too).
        let mut iters = 1u64;
        while Duration::from_nanos((ours(iters) + theirs(iters)) as u64 * iters) < 2 * CHUNK {
            iters *= 2;
        }
        let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
        let end = Instant::now() + PAIRED_TIME;
        let mut first = true;
        while Instant::now() < end {
            let (x, y) = if first {
                let x = ours(iters);
                (x, theirs(iters))
            } else {
                let y = theirs(iters);
                (ours(iters), y)
            };
            first = !first;
            a.push(x);
            b.push(y);
            // ns per round, so libxdp's time over ours is our rate over libxdp's.
            r.push(y / x);
        }
        let rate = |ns: f64| batch as f64 / ns * 1e3;
        let (ma, mb) = (median(&mut a), median(&mut b));
        let mr = median(&mut r);
        let (p25, p75) = (r[r.len() / 4], r[r.len() * 3 / 4]);
        println!(
            "{batch:>6} {:>20.0} {:>25.0} {:>17}",
            rate(ma),
            rate(mb),
            format!("{mr:.2} ({p25:.2}-{p75:.2})")
        );
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
