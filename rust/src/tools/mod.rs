//! A test rig, not the socket's API: packet loops that run entirely in Rust, as
//! xdpsock's rxdrop, txonly and l2fwd do (the reference the Python API is measured
//! against, and the benchmarks' traffic generator), and [`sequence`], numbered packets
//! checked byte by byte after a round trip.

pub mod loops;
pub mod sequence;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys::thread_cpu_seconds;

pub use loops::{drain, l2fwd, rxdrop, txonly, Pace};
pub use sequence::{sequence_check, SequenceRun, SequenceStats};

/// What a loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoopStats {
    pub packets: u64,
    pub bytes: u64,
    /// Wall-clock seconds the loop ran.
    pub seconds: f64,
    /// CPU seconds the loop's thread used (user + system).
    pub cpu_seconds: f64,
}

/// Asked between packet batches whether a loop should end early (Ctrl-C, close).
pub trait Stop {
    fn stop(&mut self) -> bool;
}

impl Stop for &AtomicBool {
    fn stop(&mut self) -> bool {
        self.load(Ordering::Relaxed)
    }
}

impl<F: FnMut() -> bool> Stop for F {
    fn stop(&mut self) -> bool {
        self()
    }
}

/// When a loop started, the CPU time its thread had used then, and when it ends.
struct Clock {
    start: Instant,
    cpu: f64,
    until: Instant,
}

impl Clock {
    fn new(duration: Duration) -> Self {
        let start = Instant::now();
        Clock {
            start,
            cpu: thread_cpu_seconds(),
            until: start + duration,
        }
    }

    fn done(&self, stop: &mut impl Stop) -> bool {
        stop.stop() || Instant::now() >= self.until
    }

    fn finish(&self, packets: u64, bytes: u64) -> LoopStats {
        LoopStats {
            packets,
            bytes,
            seconds: self.start.elapsed().as_secs_f64(),
            cpu_seconds: thread_cpu_seconds() - self.cpu,
        }
    }
}
