//! The frontend's connection, relayed message by message to the daemon's.
//!
//! Why: QEMU's virtio-net sends SET_VRING_ENABLE as soon as the guest driver picks its
//! queue pairs, before SET_FEATURES (it only checks that the backend *offered*
//! VHOST_USER_F_PROTOCOL_FEATURES), while the `vhost` crate refuses SET_VRING_ENABLE
//! until the feature was *acked* by SET_FEATURES and ends the connection. The relay
//! holds such early messages back (answering the frontend itself when it asked for an
//! answer) and hands the last state of each ring to the daemon right after the first
//! SET_FEATURES: the daemon sees a valid sequence, the rings end up as the frontend
//! set them. Every other message (its descriptors included) passes unchanged.
//!
//! A vhost-user message: a 12-byte header (request, flags, payload size; little
//! endian), the payload, and descriptors attached to its bytes.

use std::collections::BTreeMap;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::sys::scm;

const HDR_LEN: usize = 12;
/// Largest payload accepted (the protocol's own limit).
const MAX_PAYLOAD: usize = 0x1000;

const SET_FEATURES: u32 = 2;
const SET_VRING_ENABLE: u32 = 18;

const FLAG_VERSION_1: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;

/// One message, as read off a socket.
#[derive(Debug)]
pub(super) struct Message {
    pub request: u32,
    pub flags: u32,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

impl Message {
    fn new(request: u32, flags: u32, payload: Vec<u8>) -> Self {
        Message {
            request,
            flags,
            payload,
            fds: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HDR_LEN + self.payload.len());
        b.extend_from_slice(&self.request.to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.payload);
        b
    }
}

fn fill(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = scm::recv_with_fds(sock, &mut buf[got..], fds)?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection ended inside a message",
            ));
        }
        got += n;
    }
    Ok(true)
}

/// Reads one message; `None` at the end of the stream.
pub(super) fn read_message(sock: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    let mut hdr = [0u8; HDR_LEN];
    let mut fds = Vec::new();
    if !fill(sock, &mut hdr, &mut fds)? {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes(hdr[i..i + 4].try_into().expect("4 bytes"));
    let size = word(8) as usize;
    if size > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a vhost-user message of {size} bytes: the protocol allows {MAX_PAYLOAD}"),
        ));
    }
    let mut payload = vec![0u8; size];
    if size > 0 && !fill(sock, &mut payload, &mut fds)? {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection ended inside a message",
        ));
    }
    Ok(Some(Message {
        request: word(0),
        flags: word(4),
        payload,
        fds,
    }))
}

/// Writes one message whole, its descriptors with the first byte.
pub(super) fn write_message(sock: BorrowedFd<'_>, m: &Message) -> io::Result<()> {
    let bytes = m.bytes();
    let fds: Vec<BorrowedFd<'_>> = m.fds.iter().map(|f| f.as_fd()).collect();
    let mut sent = scm::send_with_fds(sock, &bytes, &fds)?;
    while sent < bytes.len() {
        let n = scm::send_with_fds(sock, &bytes[sent..], &[])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the peer stopped reading",
            ));
        }
        sent += n;
    }
    Ok(())
}

/// What the frontend-to-daemon direction remembers.
#[derive(Default)]
struct Early {
    /// SET_FEATURES went through: nothing is held back any more.
    features_seen: bool,
    /// Ring index -> enable state, from SET_VRING_ENABLE sent before that.
    held: BTreeMap<u32, u32>,
}

/// Decides what to do with one frontend message: the messages to pass to the daemon
/// (in order) and the reply to give the frontend ourselves, if any.
fn route(early: &mut Early, m: Message) -> (Vec<Message>, Option<Message>) {
    log::trace!(
        "frontend: request {} flags {:#x}, {} bytes, {} fds",
        m.request,
        m.flags,
        m.payload.len(),
        m.fds.len()
    );
    if m.request == SET_VRING_ENABLE && !early.features_seen && m.payload.len() == 8 {
        let index = u32::from_le_bytes(m.payload[0..4].try_into().expect("4 bytes"));
        let num = u32::from_le_bytes(m.payload[4..8].try_into().expect("4 bytes"));
        early.held.insert(index, num);
        let reply = (m.flags & FLAG_NEED_REPLY != 0).then(|| {
            Message::new(
                m.request,
                FLAG_VERSION_1 | FLAG_REPLY,
                0u64.to_le_bytes().to_vec(),
            )
        });
        return (Vec::new(), reply);
    }
    let mut out = vec![m];
    if out[0].request == SET_FEATURES && !early.features_seen {
        early.features_seen = true;
        for (index, num) in std::mem::take(&mut early.held) {
            let mut p = index.to_le_bytes().to_vec();
            p.extend_from_slice(&num.to_le_bytes());
            // No NEED_REPLY: the daemon answers nothing the frontend did not ask for.
            out.push(Message::new(SET_VRING_ENABLE, FLAG_VERSION_1, p));
        }
    }
    (out, None)
}

/// The two directions of one relayed connection, each in a thread; both end (and
/// shut both sockets down) when either side closes.
pub(super) struct Relay {
    threads: Vec<JoinHandle<io::Result<()>>>,
}

fn end(a: &UnixStream, b: &UnixStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

impl Relay {
    /// Relays between the frontend's connection and the daemon's.
    pub(super) fn start(frontend: UnixStream, daemon: UnixStream) -> io::Result<Relay> {
        let front = Arc::new(frontend);
        let back = Arc::new(daemon);
        // Both directions write to the frontend: one message at a time.
        let front_writes = Arc::new(Mutex::new(()));
        let (f1, b1, w1) = (front.clone(), back.clone(), front_writes.clone());
        let down = std::thread::Builder::new()
            .name("afxdp-vhost-fe".into())
            .spawn(move || {
                let mut early = Early::default();
                let r = (|| {
                    while let Some(m) = read_message(f1.as_fd())? {
                        let (pass, reply) = route(&mut early, m);
                        for p in &pass {
                            write_message(b1.as_fd(), p)?;
                        }
                        if let Some(r) = reply {
                            let _w = w1.lock().unwrap_or_else(|p| p.into_inner());
                            write_message(f1.as_fd(), &r)?;
                        }
                    }
                    Ok(())
                })();
                end(&f1, &b1);
                r
            })?;
        let up = std::thread::Builder::new()
            .name("afxdp-vhost-be".into())
            .spawn(move || {
                let r = (|| {
                    while let Some(m) = read_message(back.as_fd())? {
                        let _w = front_writes.lock().unwrap_or_else(|p| p.into_inner());
                        write_message(front.as_fd(), &m)?;
                    }
                    Ok(())
                })();
                end(&front, &back);
                r
            })?;
        Ok(Relay {
            threads: vec![down, up],
        })
    }

    /// Waits for both directions to end; returns the first error of either (a
    /// connection that ended abruptly is no error).
    pub(super) fn join(self) -> io::Result<()> {
        let mut first = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a relay thread panicked")));
            if let Err(e) = r {
                let quiet = matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::NotConnected
                );
                if !quiet && first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable(index: u32, num: u32, flags: u32) -> Message {
        let mut p = index.to_le_bytes().to_vec();
        p.extend_from_slice(&num.to_le_bytes());
        Message::new(SET_VRING_ENABLE, FLAG_VERSION_1 | flags, p)
    }

    #[test]
    fn early_ring_enables_wait_for_set_features() {
        let mut early = Early::default();
        let (pass, reply) = route(&mut early, enable(0, 1, FLAG_NEED_REPLY));
        assert!(pass.is_empty());
        let reply = reply.expect("the frontend asked for an answer");
        assert_eq!(reply.flags, FLAG_VERSION_1 | FLAG_REPLY);
        assert_eq!(reply.payload, 0u64.to_le_bytes());
        let (pass, reply) = route(&mut early, enable(1, 1, 0));
        assert!(pass.is_empty() && reply.is_none());
        // A later state of the same ring wins.
        route(&mut early, enable(0, 0, 0));
        route(&mut early, enable(0, 1, 0));
        let features = Message::new(
            SET_FEATURES,
            FLAG_VERSION_1,
            (1u64 << 30).to_le_bytes().to_vec(),
        );
        let (pass, reply) = route(&mut early, features);
        assert!(reply.is_none());
        let got: Vec<(u32, Vec<u8>)> = pass
            .iter()
            .map(|m| (m.request, m.payload.clone()))
            .collect();
        assert_eq!(got[0].0, SET_FEATURES);
        assert_eq!(
            got[1],
            (
                SET_VRING_ENABLE,
                [0u32.to_le_bytes(), 1u32.to_le_bytes()].concat()
            )
        );
        assert_eq!(
            got[2],
            (
                SET_VRING_ENABLE,
                [1u32.to_le_bytes(), 1u32.to_le_bytes()].concat()
            )
        );
        assert_eq!(got.len(), 3);
        assert!(pass[1..].iter().all(|m| m.flags & FLAG_NEED_REPLY == 0));
        // From now on everything passes unchanged.
        let (pass, reply) = route(&mut early, enable(1, 0, FLAG_NEED_REPLY));
        assert_eq!(pass.len(), 1);
        assert!(reply.is_none());
    }

    #[test]
    fn messages_cross_whole_with_their_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        let mut m = Message::new(5, FLAG_VERSION_1, vec![7; 300]);
        m.fds.push(OwnedFd::from(x));
        write_message(a.as_fd(), &m).unwrap();
        let got = read_message(b.as_fd()).unwrap().unwrap();
        assert_eq!(
            (got.request, got.flags, got.payload),
            (5, FLAG_VERSION_1, vec![7; 300])
        );
        assert_eq!(got.fds.len(), 1);
        drop(a);
        assert!(read_message(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn oversized_and_cut_messages_are_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut hdr = Vec::new();
        for w in [1u32, 1, 0x10000] {
            hdr.extend_from_slice(&w.to_le_bytes());
        }
        scm::send_with_fds(a.as_fd(), &hdr, &[]).unwrap();
        assert_eq!(
            read_message(b.as_fd()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let (a, b) = UnixStream::pair().unwrap();
        scm::send_with_fds(a.as_fd(), &hdr[..5], &[]).unwrap();
        drop(a);
        assert_eq!(
            read_message(b.as_fd()).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
