//! The packet endpoint a queue pair is connected to.
//!
//! The trait is shaped after an AF_XDP socket (one socket per queue pair):
//!
//! * RX is *peek / consume*: `recv_batch` offers frames that live in the UMEM; the callback
//!   says whether it took each one. A frame that is not taken (guest has no buffers) stays in
//!   the ring and is offered again next time (AF_XDP: `xsk_ring_cons__peek(n)`, then
//!   `release(consumed)` and `cancel(n - consumed)`), so nothing is dropped silently.
//! * TX is *reserve / commit / flush*: the backend gathers the guest's descriptor chain
//!   straight into the buffer returned by `tx_reserve` (AF_XDP: a free UMEM frame + a TX ring
//!   slot), `tx_commit` queues it, `tx_flush` publishes the batch and kicks the kernel
//!   (`sendto` when `XDP_USE_NEED_WAKEUP` says so). One copy guest -> UMEM, no bounce buffer.
//! * Readiness is level-triggered on fds: `rx_fd` is readable while frames are waiting
//!   (AF_XDP socket, EPOLLIN), `tx_wake` is ready when TX room may be available again
//!   (AF_XDP socket, EPOLLOUT). The backend only keeps `rx_fd` in its epoll set while the guest
//!   has RX buffers, and `tx_wake` only while TX is stalled, so neither can busy-loop.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub trait NetPort: Send {
    /// Offer up to `budget` received frames, in order, to `deliver`. For each frame `deliver`
    /// returns `true` if it consumed it (delivered *or* deliberately dropped and counted) and
    /// `false` to stop: that frame and all later ones must stay queued and be offered again by
    /// the next call. Returns the number of frames consumed.
    fn recv_batch(
        &mut self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> io::Result<usize>;

    /// Largest frame (without virtio-net header) the port can transmit.
    fn max_tx_frame(&self) -> usize;

    /// Reserve a buffer for one outgoing frame of exactly `len` bytes (`len <= max_tx_frame`).
    /// `Ok(None)`: no room right now (backpressure, the backend retries after `tx_wake`).
    /// `Err`: the port refuses the frame (counted as a drop). A reservation that is not
    /// committed is simply reused by the next `tx_reserve`.
    fn tx_reserve(&mut self, len: usize) -> io::Result<Option<&mut [u8]>>;

    /// Queue the frame written into the last reservation.
    fn tx_commit(&mut self, len: usize) -> io::Result<()>;

    /// Publish committed frames / kick the kernel. Called once per processed batch.
    fn tx_flush(&mut self) -> io::Result<()>;

    /// Fd that is readable (level-triggered) while frames are waiting in the port.
    fn rx_fd(&self) -> RawFd;

    /// Fd + event mask that becomes ready when a stalled TX may proceed. `None`: the port never
    /// reports "no room" (or the backend retries on the next guest kick only).
    /// May be the same fd as `rx_fd` (the backend dups it for epoll).
    fn tx_wake(&self) -> Option<(RawFd, EventSet)>;
}

/// In-memory port: frames sent by the guest come back to it with MAC addresses swapped.
/// Used by the demo binary and the tests.
pub struct LoopbackPort {
    queue: VecDeque<Vec<u8>>,
    capacity: usize,
    max_frame: usize,
    swap_macs: bool,
    tx_buf: Vec<u8>,
    /// Readable iff `queue` is non-empty.
    rx_evt: EventFd,
    /// Readable iff `queue` has room.
    room_evt: EventFd,
    /// When set, `tx_commit` fails (simulates a port refusing frames).
    pub refuse_tx: bool,
}

impl LoopbackPort {
    pub fn new(capacity: usize, max_frame: usize, swap_macs: bool) -> io::Result<Self> {
        let p = LoopbackPort {
            queue: VecDeque::new(),
            capacity,
            max_frame,
            swap_macs,
            tx_buf: Vec::new(),
            rx_evt: EventFd::new(EFD_NONBLOCK)?,
            room_evt: EventFd::new(EFD_NONBLOCK)?,
            refuse_tx: false,
        };
        if capacity > 0 {
            p.room_evt.write(1)?;
        }
        Ok(p)
    }

    /// Inject a frame as if it had arrived from the wire.
    pub fn inject(&mut self, frame: &[u8]) -> io::Result<bool> {
        if self.queue.len() >= self.capacity {
            return Ok(false);
        }
        self.push(frame.to_vec())?;
        Ok(true)
    }

    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Remove and return everything queued (used by tests as "what went out on the wire").
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        let v: Vec<_> = self.queue.drain(..).collect();
        let _ = self.sync_fds(v.len());
        v
    }

    fn push(&mut self, frame: Vec<u8>) -> io::Result<()> {
        let was_empty = self.queue.is_empty();
        self.queue.push_back(frame);
        if was_empty {
            self.rx_evt.write(1)?;
        }
        if self.queue.len() == self.capacity {
            drain_evt(&self.room_evt)?;
        }
        Ok(())
    }

    fn sync_fds(&mut self, popped: usize) -> io::Result<()> {
        if popped == 0 {
            return Ok(());
        }
        if self.queue.is_empty() {
            drain_evt(&self.rx_evt)?;
        }
        if self.queue.len() + popped >= self.capacity && self.queue.len() < self.capacity {
            self.room_evt.write(1)?;
        }
        Ok(())
    }
}

fn drain_evt(e: &EventFd) -> io::Result<()> {
    match e.read() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(err) => Err(err),
    }
}

impl NetPort for LoopbackPort {
    fn recv_batch(
        &mut self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> io::Result<usize> {
        let mut n = 0;
        while n < budget {
            let Some(front) = self.queue.front() else {
                break;
            };
            if !deliver(front) {
                break; // "cancel": stays at the head of the queue
            }
            self.queue.pop_front();
            n += 1;
        }
        self.sync_fds(n)?;
        Ok(n)
    }

    fn max_tx_frame(&self) -> usize {
        self.max_frame
    }

    fn tx_reserve(&mut self, len: usize) -> io::Result<Option<&mut [u8]>> {
        if len > self.max_frame {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame too large",
            ));
        }
        if self.queue.len() >= self.capacity {
            return Ok(None);
        }
        self.tx_buf.clear();
        self.tx_buf.resize(len, 0);
        Ok(Some(&mut self.tx_buf[..]))
    }

    fn tx_commit(&mut self, len: usize) -> io::Result<()> {
        if self.refuse_tx {
            return Err(io::Error::other("port refused frame"));
        }
        let mut frame = std::mem::take(&mut self.tx_buf);
        frame.truncate(len);
        if self.swap_macs && frame.len() >= 12 {
            let (dst, rest) = frame.split_at_mut(6);
            dst.swap_with_slice(&mut rest[..6]);
        }
        self.push(frame)
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn rx_fd(&self) -> RawFd {
        self.rx_evt.as_raw_fd()
    }

    fn tx_wake(&self) -> Option<(RawFd, EventSet)> {
        Some((self.room_evt.as_raw_fd(), EventSet::IN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        r == 1 && p.revents & libc::POLLIN != 0
    }

    #[test]
    fn loopback_fd_levels_and_cancel() {
        let mut p = LoopbackPort::new(2, 2000, true).unwrap();
        assert!(!readable(p.rx_fd()));
        assert!(readable(p.tx_wake().unwrap().0));
        let buf = p.tx_reserve(14).unwrap().unwrap();
        buf.copy_from_slice(&[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 8, 0]);
        p.tx_commit(14).unwrap();
        assert!(readable(p.rx_fd()));
        p.inject(&[9; 20]).unwrap();
        assert!(!readable(p.tx_wake().unwrap().0), "full: no room");
        assert!(p.tx_reserve(14).unwrap().is_none());
        // Refuse the first frame: nothing consumed, still readable.
        assert_eq!(p.recv_batch(8, &mut |_| false).unwrap(), 0);
        assert!(readable(p.rx_fd()));
        let mut got = Vec::new();
        assert_eq!(
            p.recv_batch(8, &mut |f| {
                got.push(f.to_vec());
                true
            })
            .unwrap(),
            2
        );
        assert_eq!(
            &got[0][..12],
            &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1],
            "MACs swapped"
        );
        assert!(!readable(p.rx_fd()));
        assert!(readable(p.tx_wake().unwrap().0));
    }
}
