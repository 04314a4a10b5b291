//! Frontend -> backend: any sequence of vhost-user messages a frontend may send (any
//! request number and flags, SET_MEM_TABLE with odd regions and memfds smaller or
//! larger than them, ring addresses inside or outside memory, SET_VRING_* in any order
//! and for queues that do not exist, feature bits the backend did not offer, kick and
//! call descriptors or none, a last message whose size field lies, which the relay's
//! framing meets) goes over a real Unix socket through the relay into the daemon and
//! the backend, served as `VhostUser` serves a frontend (`server::serve_one`), with a
//! loopback port.
//!
//! Invariants checked after each input, beyond "no panic":
//! * the connection ends, and serving it returns (a hang is a timeout finding);
//! * the connection's state is gone with it: the backend maps no guest memory;
//! * the backend serves the next frontend: SET_OWNER, GET_PROTOCOL_FEATURES and
//!   GET_FEATURES are answered as by a backend that never saw the input;
//! * no frame moved: the loopback port holds nothing (the guest memory a frontend can
//!   give here holds no packets).
#![no_main]

use afxdp_rs::vhost::port::LoopbackPort;
use afxdp_rs::vhost::server::serve_one;
use afxdp_rs::vhost::{NetBackend, NetBackendConfig};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use vm_memory::{GuestAddressSpace, GuestMemoryBackend};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

#[allow(dead_code)] // only its Input here
#[path = "guest_model.rs"]
mod guest_model;
use guest_model::Input;

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const SET_VRING_ERR: u32 = 14;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const SET_VRING_ENABLE: u32 = 18;
const SET_CONFIG: u32 = 25;
const ADD_MEM_REG: u32 = 37;
const REM_MEM_REG: u32 = 38;
/// Requests 1 to 44 are the vhost crate's (0.18); 45 is one it does not know.
const LAST_REQUEST: u32 = 45;

const VERSION_1: u32 = 0x1;
const NEED_REPLY: u32 = 0x8;
const MAX_MESSAGES: usize = 24;

fn backend() -> Arc<NetBackend<LoopbackPort>> {
    let cfg = NetBackendConfig {
        mac: [2, 0, 0, 0, 0, 1],
        queue_size: 256,
        mtu: None,
    };
    let port = LoopbackPort::new(64, 65535, true).expect("a loopback port");
    Arc::new(NetBackend::new(cfg, vec![port]).expect("a backend"))
}

/// A memfd of `size` bytes.
fn memfd(size: u64) -> OwnedFd {
    // SAFETY: a NUL-terminated name and no flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is the memfd just created, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on a descriptor we own.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) }, 0);
    fd
}

/// One message from the fuzzer's bytes: the header, the payload (shaped like the
/// request's own where it has one, so that the backend gets past parsing), and the
/// descriptors to attach; and whether its size field differs from its payload's.
fn message(b: &mut Input<'_>) -> ((Vec<u8>, Vec<OwnedFd>), bool) {
    let pick = b.u8();
    let request = if pick == 0xFF {
        b.u32()
    } else {
        u32::from(pick) % LAST_REQUEST + 1
    };
    // GET_FEATURES is the conversation's last message (see `converse`).
    let request = if request == GET_FEATURES {
        GET_PROTOCOL_FEATURES
    } else {
        request
    };
    let mode = b.u8();
    let flags = if mode & 0x80 != 0 {
        b.u32()
    } else {
        VERSION_1 | if mode & 1 != 0 { NEED_REPLY } else { 0 }
    };
    let mut payload = Vec::new();
    let mut fds = Vec::new();
    let u64_of = |b: &mut Input<'_>| u64::from(b.u32()) | (u64::from(b.u32()) << 32);
    // A queue index: mostly one that exists (0, 1), sometimes any.
    let index = |b: &mut Input<'_>| {
        let i = b.u8();
        if i & 0x80 != 0 {
            b.u32()
        } else {
            u32::from(i % 3)
        }
    };
    match request {
        SET_FEATURES | SET_PROTOCOL_FEATURES => payload.extend(u64_of(b).to_le_bytes()),
        SET_MEM_TABLE | ADD_MEM_REG | REM_MEM_REG => {
            let n = if request == SET_MEM_TABLE {
                u32::from(b.u8() % 4)
            } else {
                1
            };
            if request == SET_MEM_TABLE {
                payload.extend(n.to_le_bytes());
                payload.extend(0u32.to_le_bytes());
            } else {
                payload.extend(0u64.to_le_bytes());
            }
            for _ in 0..n {
                // Region: guest address, size, frontend address, offset into the fd.
                let gpa = u64::from(b.u8()) * 0x1_0000;
                let size = (u64::from(b.u8() % 16) + 1) * 0x1000;
                let size = if b.u8() & 1 != 0 { u64_of(b) } else { size };
                let uaddr = u64_of(b);
                let offset = u64::from(b.u8() % 4) * 0x1000;
                for v in [gpa, size, uaddr, offset] {
                    payload.extend(v.to_le_bytes());
                }
                // The fd: as large as the region, or smaller, or larger.
                let fd_size = match b.u8() % 3 {
                    0 => size.min(1 << 20) + offset,
                    1 => 0x1000,
                    _ => 0x2_0000,
                };
                if b.u8() % 8 != 0 {
                    fds.push(memfd(fd_size));
                }
            }
        }
        SET_VRING_NUM | SET_VRING_BASE | GET_VRING_BASE | SET_VRING_ENABLE => {
            payload.extend(index(b).to_le_bytes());
            payload.extend(b.u32().to_le_bytes());
        }
        SET_VRING_ADDR => {
            payload.extend(index(b).to_le_bytes());
            payload.extend(b.u32().to_le_bytes());
            // Descriptors, used, avail, log: inside the first 64 KiB pages or anywhere.
            for _ in 0..4 {
                let a = if b.u8() & 1 != 0 {
                    u64_of(b)
                } else {
                    u64::from(b.u16())
                };
                payload.extend(a.to_le_bytes());
            }
        }
        SET_VRING_KICK | SET_VRING_CALL | SET_VRING_ERR => {
            let v = u64::from(index(b)) | u64::from(b.u8() & 1) << 8;
            payload.extend(v.to_le_bytes());
            if b.u8() % 4 != 0 {
                // SAFETY: no arguments but the count and flags; the result is checked.
                let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
                assert!(fd >= 0, "eventfd");
                // SAFETY: the eventfd just created, owned from here on.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        SET_CONFIG => {
            payload.extend(b.u32().to_le_bytes());
            payload.extend(b.u32().to_le_bytes());
            payload.extend(b.u32().to_le_bytes());
            for _ in 0..usize::from(b.u8() % 16) {
                payload.push(b.u8());
            }
        }
        _ => {
            for _ in 0..usize::from(b.u8()) {
                payload.push(b.u8());
            }
        }
    }
    // The size field: the payload's, or another up to the protocol's limit (a
    // message that claims more or less than it has).
    let size = if mode & 0x40 != 0 {
        u32::from(b.u16() % 0x1001)
    } else {
        payload.len() as u32
    };
    let mut bytes = header(request, flags, size);
    let off = size as usize != payload.len();
    bytes.extend(payload);
    ((bytes, fds), off)
}

/// One reply off the frontend's end: its request and payload; None at the end of
/// the connection.
fn read_reply(s: &UnixStream) -> Option<(u32, Vec<u8>)> {
    let mut hdr = [0u8; 12];
    (&*s).read_exact(&mut hdr).ok()?;
    let field = |i: usize| u32::from_le_bytes(hdr[i..i + 4].try_into().unwrap());
    let mut payload = vec![0u8; field(8) as usize];
    (&*s).read_exact(&mut payload).ok()?;
    Some((field(0), payload))
}

fn header(request: u32, flags: u32, size: u32) -> Vec<u8> {
    [request, flags, size]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Sends `messages` as a frontend, then (unless the last one's size field is off)
/// GET_FEATURES, which the fuzzer's messages never are: once its reply is back (or the
/// backend has ended the connection) every message before it was handled. Then ends
/// the connection, waits for serving it to return, and gives the replies.
fn converse(
    be: &Arc<NetBackend<LoopbackPort>>,
    mut messages: Vec<(Vec<u8>, Vec<OwnedFd>)>,
    sync: bool,
) -> Vec<(u32, Vec<u8>)> {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    let served = {
        let be = be.clone();
        std::thread::spawn(move || serve_one(be, theirs))
    };
    if sync {
        messages.push((header(GET_FEATURES, VERSION_1, 0), Vec::new()));
    }
    let writer = {
        let ours = ours.try_clone().expect("a second handle");
        std::thread::spawn(move || {
            for (bytes, fds) in messages {
                let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
                let sent = if raw.is_empty() {
                    (&ours).write_all(&bytes).is_ok()
                } else {
                    match ours.send_with_fds(&[&bytes[..]], &raw) {
                        Ok(n) => (&ours).write_all(&bytes[n..]).is_ok(),
                        Err(_) => false,
                    }
                };
                if !sent {
                    break;
                }
            }
            if !sync {
                // A message that claims more than it has: only the end of the
                // connection ends it.
                let _ = ours.shutdown(Shutdown::Write);
            }
        })
    };
    let mut replies = Vec::new();
    while let Some(r) = read_reply(&ours) {
        let last = sync && r.0 == GET_FEATURES;
        replies.push(r);
        if last {
            break;
        }
    }
    let _ = ours.shutdown(Shutdown::Both);
    writer.join().expect("the writer");
    served
        .join()
        .expect("serving a connection panicked")
        .expect("serving a connection failed to start");
    replies
}

/// SET_OWNER, GET_PROTOCOL_FEATURES, then GET_FEATURES: the two replies' values.
fn ask(be: &Arc<NetBackend<LoopbackPort>>) -> Vec<(u32, Vec<u8>)> {
    let q = |request: u32| (header(request, VERSION_1, 0), Vec::new());
    converse(be, vec![q(SET_OWNER), q(GET_PROTOCOL_FEATURES)], true)
}

fn fresh() -> &'static [(u32, Vec<u8>)] {
    static ANSWERS: OnceLock<Vec<(u32, Vec<u8>)>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let a = ask(&backend());
        let asked: Vec<u32> = a.iter().map(|r| r.0).collect();
        assert_eq!(
            asked,
            [GET_PROTOCOL_FEATURES, GET_FEATURES],
            "a fresh backend answers"
        );
        a
    })
}

fuzz_target!(|data: &[u8]| {
    static SIGPIPE: OnceLock<()> = OnceLock::new();
    SIGPIPE.get_or_init(|| {
        // A frontend that writes after the backend ended the connection gets EPIPE,
        // as in the programs that run the backend (Rust's and Python's runtimes
        // ignore SIGPIPE; libFuzzer's does not).
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    });
    let mut b = Input(data);
    let mut messages = Vec::new();
    let mut sync = true;
    while !b.0.is_empty() && messages.len() < MAX_MESSAGES && sync {
        let (m, size_off) = message(&mut b);
        messages.push(m);
        sync = !size_off;
    }
    let be = backend();
    converse(&be, messages, sync);
    assert_eq!(
        be.memory().memory().num_regions(),
        0,
        "guest memory outlived its connection"
    );
    assert_eq!(
        ask(&be),
        fresh(),
        "the backend answers differently after the input"
    );
    assert_eq!(be.with_port(0, |p| p.pending()), 0, "a frame moved");
});
