//! Bytes with file descriptors over a Unix stream socket (SCM_RIGHTS), as vhost-user
//! passes guest memory, kick and call eventfds.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Most descriptors one message may carry (the vhost-user limit).
pub const MAX_FDS: usize = 32;

/// Control-message buffer for [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 256]);

const fn cmsg_space() -> usize {
    // CMSG_SPACE(MAX_FDS * sizeof(int)) on Linux: header plus data, rounded up to 8.
    let data = MAX_FDS * mem::size_of::<libc::c_int>();
    (mem::size_of::<libc::cmsghdr>() + data).div_ceil(8) * 8
}

const _: () = assert!(cmsg_space() <= 256);

/// recvmsg(2) into `buf`; descriptors that came with the bytes are appended to `fds`
/// (close-on-exec). Returns the bytes read, 0 at end of stream. Fails with EMSGSIZE
/// when a message carried more than [`MAX_FDS`] descriptors (the rest were closed by
/// the kernel).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = CmsgBuf([0; 256]);
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg_space() as _;
    let n = loop {
        // SAFETY: msg points at one iovec over `buf` and at `cbuf`, all alive and
        // writable for the call; the lengths given are theirs.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in, bounded
    // by msg_controllen; each SCM_RIGHTS payload holds that many ints.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                for i in 0..len / mem::size_of::<libc::c_int>() {
                    // Each is a new descriptor the kernel installed for us.
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok(n)
}

/// sendmsg(2) of `buf` with `fds` attached (none: a plain send). Returns the bytes
/// sent, which may be fewer than `buf.len()`; the descriptors go with the first byte.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cbuf = CmsgBuf([0; 256]);
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = (fds.len() * mem::size_of::<libc::c_int>()) as u32;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
        // SAFETY: the control buffer is CMSG_SPACE(data_len) <= 256 bytes long and
        // aligned; the first header and its data lie inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as _;
            let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: msg points at one iovec over `buf` and at the control buffer, both
        // alive for the call; the descriptors in it are borrowed, hence open.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_and_descriptors_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile_with(b"payload");
        let sent = send_with_fds(a.as_fd(), b"hello", &[file.as_fd(), file.as_fd()]).unwrap();
        assert_eq!(sent, 5);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        // The received descriptor is the same open file.
        let mut got = std::fs::File::from(fds.pop().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "payload");
        file.write_all(b"!").unwrap();
        drop(a);
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap(), 0);
    }

    #[test]
    fn too_many_descriptors_are_refused() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fds: Vec<_> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        let e = send_with_fds(a.as_fd(), b"x", &fds).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
    }

    fn tempfile_with(data: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("afxdp-scm-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(data).unwrap();
        f
    }
}
