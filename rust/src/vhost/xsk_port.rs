//! The AF_XDP socket as a queue pair's [`NetPort`]: the guest's packets are written
//! straight into UMEM frames (one copy, from guest memory), the socket's packets are
//! peeked and consumed only as far as the guest has buffers for them (the rest stay in
//! the rx ring: nothing is dropped in user space), and partial checksums from the host
//! side are completed before the guest sees them (the guest is not offered checksum
//! offload).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::epoll::EventSet;

use super::port::NetPort;
use crate::error::Error;
use crate::socket::XskSocket;
use crate::umem::RxFrames;

/// A queue pair's port: one AF_XDP socket.
pub struct XskPort {
    sock: XskSocket,
    /// Reused for every receive (empty between calls).
    frames: RxFrames,
    /// A multi-frame packet joined for the guest, or gathered from it.
    scratch: Vec<u8>,
    /// A guest packet larger than a frame is gathered here and sent with a copy.
    big: bool,
}

fn io_err(e: Error) -> io::Error {
    io::Error::other(e.message().to_string())
}

impl XskPort {
    pub fn new(sock: XskSocket) -> Self {
        XskPort {
            frames: sock.rx_frames(256),
            sock,
            scratch: Vec::new(),
            big: false,
        }
    }

    pub fn socket(&self) -> &XskSocket {
        &self.sock
    }

    pub fn socket_mut(&mut self) -> &mut XskSocket {
        &mut self.sock
    }
}

impl NetPort for XskPort {
    fn recv_batch(
        &mut self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> io::Result<usize> {
        let budget = budget.min(u32::MAX as usize) as u32;
        self.sock
            .rx_peek(budget, &mut self.frames)
            .map_err(io_err)?;
        let mut taken = 0;
        for i in 0..self.frames.len() {
            if !deliver(self.frames.bytes(i, &mut self.scratch)) {
                break;
            }
            taken += 1;
        }
        // The ones the guest had no buffers for stay in the ring for the next call.
        let consumed = self
            .sock
            .rx_consume(taken as u32, &mut self.frames)
            .map_err(io_err)?;
        self.sock.recycle(&mut self.frames);
        Ok(consumed as usize)
    }

    fn max_tx_frame(&self) -> usize {
        self.sock.max_packet() as usize
    }

    fn tx_reserve(&mut self, len: usize) -> io::Result<Option<&mut [u8]>> {
        if len <= self.sock.config().umem.frame_size as usize {
            self.big = false;
            return Ok(self
                .sock
                .reserve_frame()
                .map_err(io_err)?
                .map(|f| &mut f[..len]));
        }
        // Larger than a frame (multi-buffer): gathered, then split over frames.
        if !self.sock.tx_room(len) {
            return Ok(None);
        }
        self.big = true;
        self.scratch.resize(len, 0);
        Ok(Some(&mut self.scratch[..len]))
    }

    fn tx_commit(&mut self, len: usize) -> io::Result<()> {
        let queued = if self.big {
            self.sock
                .send_some(&[&self.scratch[..len]])
                .map_err(io_err)?
                == 1
        } else {
            self.sock.commit_frame(len).map_err(io_err)?
        };
        if queued {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the tx ring filled between reserve and commit",
            ))
        }
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        self.sock.drain_tx().map_err(io_err)
    }

    fn rx_fd(&self) -> RawFd {
        self.sock.fd().as_raw_fd()
    }

    fn tx_wake(&self) -> Option<(RawFd, EventSet)> {
        Some((self.sock.fd().as_raw_fd(), EventSet::OUT))
    }
}
