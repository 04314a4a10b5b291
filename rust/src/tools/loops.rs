//! rxdrop, txonly and l2fwd, entirely in Rust.

use std::time::Duration;

use super::{Clock, LoopStats, Stop};
use crate::error::Result;
use crate::socket::{Wait, XskSocket};

/// How long a poll-mode loop waits at most before looking at the clock again.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// How a receiving loop takes packets and waits between batches.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Packets per batch.
    pub batch: u32,
    /// Wait in poll(2) when nothing came, instead of spinning.
    pub poll: bool,
    /// After a batch that was not full, wait this long for more to gather (fewer
    /// wakeups per packet).
    pub linger: Duration,
}

/// Runs `step` (which handles up to a batch and says how many packets) until the clock
/// or `stop` says so, waiting between batches as `pace` says.
fn paced(
    sock: &mut XskSocket,
    clock: &Clock,
    pace: Pace,
    stop: &mut impl Stop,
    mut step: impl FnMut(&mut XskSocket) -> Result<u32>,
) -> Result<()> {
    let wait = Wait::for_socket(sock.config().busy_poll);
    let watch = sock.watch();
    while !clock.done(stop) {
        let n = step(sock)?;
        if n == 0 && pace.poll {
            // Sleep in poll(2) (or busy-poll, on a busy-polling socket) until packets
            // come; the next step takes them.
            wait.slice(&watch, POLL_SLICE, || false, || Ok(Some(())))?;
        } else if n < pace.batch && !pace.linger.is_zero() {
            // Let more gather (also after an empty look, when spinning).
            std::thread::sleep(pace.linger);
        }
    }
    Ok(())
}

/// Receives and drops packets for `duration` (or until `stop`).
pub fn rxdrop(
    sock: &mut XskSocket,
    pace: Pace,
    duration: Duration,
    mut stop: impl Stop,
) -> Result<LoopStats> {
    let clock = Clock::new(duration);
    let mut frames = sock.rx_frames(pace.batch as usize);
    let (mut packets, mut bytes) = (0u64, 0u64);
    paced(sock, &clock, pace, &mut stop, |sock| {
        let n = sock.recv(pace.batch, &mut frames)?;
        packets += n as u64;
        bytes += frames.descs().iter().map(|d| d.len as u64).sum::<u64>();
        sock.recycle(&mut frames);
        Ok(n)
    })?;
    Ok(clock.finish(packets, bytes))
}

/// Sends `packet` over and over in batches of `batch` for `duration` (or until
/// `stop`); counts what the kernel completed.
pub fn txonly(
    sock: &mut XskSocket,
    packet: &[u8],
    batch: u32,
    duration: Duration,
    mut stop: impl Stop,
) -> Result<LoopStats> {
    sock.check_packet(0, packet.len())?;
    let clock = Clock::new(duration);
    let packets: Vec<&[u8]> = vec![packet; batch as usize];
    let done0 = sock.counters().tx_completed;
    while !clock.done(&mut stop) {
        match sock.send_some(&packets) {
            Ok(0) => {
                sock.kick_tx()?;
                sock.complete();
            }
            Ok(_) => {}
            // A down link is a state: wait for it instead of ending the run.
            Err(e) if e.kind() == crate::error::ErrorKind::LinkDown => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
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
    pace: Pace,
    duration: Duration,
    mut stop: impl Stop,
) -> Result<LoopStats> {
    let clock = Clock::new(duration);
    let (b0, p0) = (sock.counters().tx_bytes, sock.counters().tx_packets);
    paced(sock, &clock, pace, &mut stop, |sock| {
        sock.forward_back(pace.batch, true)
    })?;
    sock.flush(Some(Duration::from_secs(1)))?;
    let c = sock.counters();
    Ok(clock.finish(c.tx_packets - p0, c.tx_bytes - b0))
}

/// Empties the rx ring through the Rust API, `batch` packets at a time (receive, hand
/// the frames back), without waiting: the Rust side of `afxdp bench drain`. Returns
/// the packets and the time it took.
pub fn drain(sock: &mut XskSocket, batch: u32) -> Result<(u64, Duration)> {
    let mut frames = sock.rx_frames(batch as usize);
    let mut packets = 0u64;
    let t0 = std::time::Instant::now();
    loop {
        let n = sock.recv(batch, &mut frames)?;
        if n == 0 {
            break;
        }
        sock.recycle(&mut frames);
        packets += n as u64;
    }
    Ok((packets, t0.elapsed()))
}
