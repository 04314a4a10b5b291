//! Sequence-checked traffic: numbered packets out of one socket, through whatever
//! forwards them on the far side, and back, where every byte and the order of the
//! numbers are checked.

use std::time::{Duration, Instant};

use super::Stop;
use crate::error::{Error, ErrorKind, Result};
use crate::socket::XskSocket;

/// What a sequence-checked run ([`sequence_check`]) saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SequenceStats {
    /// Packets queued for sending (numbered 0 to sent-1).
    pub sent: u64,
    /// Packets that came back intact and in order.
    pub received: u64,
    /// Sequence numbers that never came back (gaps, and the tail after the last one
    /// that arrived).
    pub missing: u64,
    /// Packets that arrived with a sequence number not above the last one: reordered
    /// or duplicated.
    pub out_of_order: u64,
    /// Packets whose length, headers or payload differ from what was sent.
    pub corrupted: u64,
    /// Most packets in flight at once (sent, not yet back or known lost).
    pub max_in_flight: u64,
    pub seconds: f64,
}

/// Where the sequence number sits in a packet, and the smallest packet that can carry
/// one: Ethernet (14) + IPv4 (20) + UDP (8) headers, then 8 bytes of sequence number.
pub const SEQ_OFFSET: usize = 42;
const SEQ_MIN_PACKET: usize = SEQ_OFFSET + 8;

/// The payload byte at `i` (after the sequence number) of packet `seq`: every byte
/// depends on both, so a byte from another packet or another offset is caught.
fn pattern(seq: u64, i: usize) -> u8 {
    ((seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).wrapping_add(i as u8)
}

/// Writes packet `seq`: `template`'s headers, the sequence number, the pattern.
pub fn stamp(template: &[u8], seq: u64, out: &mut [u8]) {
    out[..SEQ_OFFSET].copy_from_slice(&template[..SEQ_OFFSET]);
    out[SEQ_OFFSET..SEQ_MIN_PACKET].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[SEQ_MIN_PACKET..].iter_mut().enumerate() {
        *b = pattern(seq, i);
    }
}

/// Checks a packet that came back: `template`'s headers (with the MAC addresses
/// exchanged when `swapped`, as a forwarder does), then the sequence number's pattern.
/// Returns the sequence number, or `None` when any byte is wrong.
pub fn check_stamp(template: &[u8], swapped: bool, data: &[u8]) -> Option<u64> {
    if data.len() != template.len() {
        return None;
    }
    let macs_ok = if swapped {
        data[..6] == template[6..12] && data[6..12] == template[..6]
    } else {
        data[..12] == template[..12]
    };
    if !macs_ok || data[12..SEQ_OFFSET] != template[12..SEQ_OFFSET] {
        return None;
    }
    let seq = u64::from_le_bytes(data[SEQ_OFFSET..SEQ_MIN_PACKET].try_into().ok()?);
    let payload_ok = data[SEQ_MIN_PACKET..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(seq, i));
    payload_ok.then_some(seq)
}

/// Parameters of [`sequence_check`].
#[derive(Debug, Clone)]
pub struct SequenceRun {
    /// The packet to send: its first [`SEQ_OFFSET`] bytes (headers) are kept, the rest
    /// is replaced by the sequence number and a pattern. Its length is the length of
    /// every packet.
    pub template: Vec<u8>,
    /// How many packets to send.
    pub count: u64,
    pub batch: u32,
    /// At most this many packets in flight (0: no limit, send as fast as possible).
    pub window: u64,
    /// Whatever comes back has its MAC addresses exchanged (it went through l2fwd).
    pub swapped: bool,
    /// After the last packet is sent, stop once nothing has arrived for this long.
    pub quiet: Duration,
}

/// Sends `run.count` numbered packets out of `sock` and checks what comes back to the
/// same socket (through a forwarder on the other side of the link): every byte, and
/// that sequence numbers only go up (no reordering or duplicates within the queue).
/// Never waits forever: once all are sent, or while the window is full, it stops
/// after `run.quiet` without an arrival (then `sent` may be below `count`).
pub fn sequence_check(
    sock: &mut XskSocket,
    run: &SequenceRun,
    mut stop: impl Stop,
) -> Result<SequenceStats> {
    let len = run.template.len();
    if len < SEQ_MIN_PACKET {
        return Err(Error::new(
            ErrorKind::PacketSize,
            format!(
                "the template is {len} bytes: a sequence-checked packet needs at least \
                 {SEQ_MIN_PACKET} (headers, then an 8-byte sequence number)"
            ),
        ));
    }
    sock.check_packet(0, len)?;
    let start = Instant::now();
    let batch = run.batch.max(1) as usize;
    let mut bufs = vec![vec![0u8; len]; batch];
    let mut st = SequenceStats::default();
    // The next sequence number to expect: one above the last that arrived.
    let mut expect = 0u64;
    let mut last_arrival = Instant::now();
    let mut frames = sock.rx_frames(batch);
    let mut joined = Vec::new();
    while !stop.stop() {
        let in_flight = st.sent - expect;
        st.max_in_flight = st.max_in_flight.max(in_flight);
        let room = if run.window == 0 {
            u64::MAX
        } else {
            run.window.saturating_sub(in_flight)
        };
        let can_send = st.sent < run.count && room > 0;
        if can_send {
            let k = (batch as u64).min(run.count - st.sent).min(room) as usize;
            for (i, buf) in bufs[..k].iter_mut().enumerate() {
                stamp(&run.template, st.sent + i as u64, buf);
            }
            if k > 0 {
                // send_some queues a prefix of bufs (as many as fit): count those.
                // A down link is a state: send nothing now, look again after a
                // short wait (receiving goes on meanwhile).
                let n = match sock.send_some(&bufs[..k]) {
                    Err(e) if e.kind() == crate::error::ErrorKind::LinkDown => {
                        sock.poll(libc::POLLIN, Some(std::time::Duration::from_millis(10)))?;
                        0
                    }
                    r => r?,
                };
                st.sent += n as u64;
                if n == 0 {
                    sock.kick_tx()?;
                    sock.complete();
                }
            }
        }
        let n = sock.recv(batch as u32, &mut frames)?;
        for i in 0..frames.len() {
            match check_stamp(&run.template, run.swapped, frames.bytes(i, &mut joined)) {
                None => st.corrupted += 1,
                Some(seq) if seq < expect || seq >= st.sent => st.out_of_order += 1,
                Some(seq) => {
                    st.missing += seq - expect;
                    st.received += 1;
                    expect = seq + 1;
                }
            }
        }
        sock.recycle(&mut frames);
        if n > 0 {
            last_arrival = Instant::now();
        } else if !can_send {
            // All sent, or the window is full: only arrivals can move things on. Stop
            // when everything is back, or when nothing came for `quiet` (whatever is
            // still out counts as missing; with a full window, `sent` < `count` then).
            if (st.sent == run.count && st.sent == expect) || last_arrival.elapsed() >= run.quiet {
                break;
            }
            // Take completions back meanwhile: the socket's counters then say what
            // the kernel sent, and a stalled tx ring is kicked again (see complete).
            sock.complete();
            sock.poll(libc::POLLIN, Some(Duration::from_millis(10)))?;
        }
    }
    st.missing += st.sent - expect;
    st.seconds = start.elapsed().as_secs_f64();
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 3) as u8).collect()
    }

    #[test]
    fn stamped_packets_check_and_any_changed_byte_is_caught() {
        let t = template(100);
        let mut p = vec![0u8; 100];
        stamp(&t, 12345, &mut p);
        assert_eq!(check_stamp(&t, false, &p), Some(12345));
        assert_eq!(check_stamp(&t, true, &p), None, "MACs were not swapped");
        for i in 0..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 0x01;
            assert_eq!(check_stamp(&t, false, &bad), None, "byte {i} changed");
        }
        assert_eq!(check_stamp(&t, false, &p[..99]), None, "truncated");
    }

    #[test]
    fn swapped_macs_are_expected_after_a_forwarder() {
        let t = template(64);
        let mut p = vec![0u8; 64];
        stamp(&t, 7, &mut p);
        let (dst, src) = p.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        assert_eq!(check_stamp(&t, true, &p), Some(7));
    }

    #[test]
    fn payloads_of_neighbouring_packets_differ() {
        let t = template(64);
        let (mut a, mut b) = (vec![0u8; 64], vec![0u8; 64]);
        stamp(&t, 1, &mut a);
        stamp(&t, 2, &mut b);
        // Packet 2's payload under packet 1's number is caught.
        b[SEQ_OFFSET..SEQ_MIN_PACKET].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(check_stamp(&t, false, &b), None);
        assert_eq!(check_stamp(&t, false, &a), Some(1));
    }
}
