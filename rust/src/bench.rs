//! Packet loops that run entirely in Rust, as xdpsock's rxdrop, txonly and l2fwd do:
//! the reference the Python API is measured against, and the traffic generator of the
//! benchmarks.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::socket::XskSocket;
use crate::sys::XdpDesc;

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

/// CPU time used by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; zero is a valid value, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

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

    fn done(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed) || Instant::now() >= self.until
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

/// How long a poll-mode loop waits at most before looking at the clock again.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// Receives and drops packets for `duration` (or until `stop`). `poll`: wait in poll(2)
/// when the ring is empty, instead of spinning. `linger`: after a batch that was not
/// full, wait this long for more packets to gather (fewer wakeups per packet).
pub fn rxdrop(
    sock: &mut XskSocket,
    batch: u32,
    duration: Duration,
    poll: bool,
    linger: Duration,
    stop: &AtomicBool,
) -> Result<LoopStats> {
    let clock = Clock::new(duration);
    let mut descs: Vec<XdpDesc> = Vec::with_capacity(batch as usize);
    let (mut packets, mut bytes) = (0u64, 0u64);
    while !clock.done(stop) {
        descs.clear();
        let n = sock.recv(batch, &mut descs)?;
        if n == 0 {
            if poll {
                sock.poll(libc::POLLIN, Some(POLL_SLICE))?;
            }
            continue;
        }
        packets += n as u64;
        bytes += descs.iter().map(|d| d.len as u64).sum::<u64>();
        sock.recycle(descs.iter().map(|d| d.addr));
        if n < batch && !linger.is_zero() {
            std::thread::sleep(linger);
        }
    }
    Ok(clock.finish(packets, bytes))
}

/// Sends `packet` over and over in batches of `batch` for `duration` (or until
/// `stop`); counts what the kernel completed.
pub fn txonly(
    sock: &mut XskSocket,
    packet: &[u8],
    batch: u32,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<LoopStats> {
    sock.check_packet(0, packet.len())?;
    let clock = Clock::new(duration);
    let packets: Vec<&[u8]> = vec![packet; batch as usize];
    let done0 = sock.counters().tx_completed;
    while !clock.done(stop) {
        if sock.send_some(&packets)? == 0 {
            sock.kick_tx()?;
            sock.complete();
        }
    }
    sock.flush(Some(Duration::from_secs(1)))?;
    let sent = sock.counters().tx_completed - done0;
    Ok(clock.finish(sent, sent * packet.len() as u64))
}

/// Sends every received packet back out of the same socket with its MAC addresses
/// swapped, for `duration` (or until `stop`).
pub fn l2fwd(
    sock: &mut XskSocket,
    batch: u32,
    duration: Duration,
    poll: bool,
    linger: Duration,
    stop: &AtomicBool,
) -> Result<LoopStats> {
    let clock = Clock::new(duration);
    let (b0, p0) = (sock.counters().tx_bytes, sock.counters().tx_packets);
    while !clock.done(stop) {
        let n = sock.forward_back(batch, true)?;
        if n == 0 && poll {
            sock.poll(libc::POLLIN, Some(POLL_SLICE))?;
        } else if n < batch && !linger.is_zero() {
            std::thread::sleep(linger);
        }
    }
    sock.flush(Some(Duration::from_secs(1)))?;
    let c = sock.counters();
    Ok(clock.finish(c.tx_packets - p0, c.tx_bytes - b0))
}
