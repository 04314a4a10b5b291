//! One error type for the whole core. Each error carries a kind (which the Python
//! bindings map to a specific exception class) and a finished message that names the
//! offending value and says what to do about it.

use std::fmt;
use std::io;

/// What went wrong, coarsely: one variant per exception class users can catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No interface of that name in the current network namespace.
    InterfaceNotFound,
    /// The interface has no such queue.
    InvalidQueue,
    /// A size, count or option is out of range.
    InvalidConfig,
    /// A packet does not fit in a frame (or is empty).
    PacketSize,
    /// The socket was closed.
    Closed,
    /// Missing capability or privilege.
    Permission,
    /// Locked-memory limit too low for the UMEM.
    Memlock,
    /// Another XDP program is already attached to the interface.
    ProgramAttached,
    /// The XDP program could not be loaded or attached in the requested mode.
    Attach,
    /// The XDP program steering packets to a socket was detached by someone else.
    ProgramDetached,
    /// The interface or queue is busy (another socket is bound to it).
    Busy,
    /// The socket was opened by the parent of a fork: the child must not use it.
    Forked,
    /// The socket's interface is down: the socket stays usable and works again when
    /// the link is up.
    LinkDown,
    /// Any other failure of a system call.
    Os,
}

/// An error of the afxdp_rs core.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    errno: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            errno: None,
        }
    }

    /// An error from a failed system call: `what` says what we were doing.
    pub fn os(what: impl fmt::Display, err: io::Error) -> Self {
        let errno = err.raw_os_error();
        let kind = match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => ErrorKind::Permission,
            Some(libc::EBUSY) => ErrorKind::Busy,
            _ => ErrorKind::Os,
        };
        Error {
            kind,
            message: format!("{what}: {err}"),
            errno,
        }
    }

    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = Some(errno);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The error for a socket used in the child of a fork.
    pub fn forked(what: &str) -> Self {
        Error::new(
            ErrorKind::Forked,
            format!(
                "this {what} was opened before the process forked: its rings are shared \
                 with the parent process, so it cannot be used here (nothing was done). \
                 Open a new one in this process (on a queue the parent does not use), or \
                 use the \"spawn\" or \"forkserver\" start method of multiprocessing"
            ),
        )
    }

    pub fn closed() -> Self {
        Error::new(
            ErrorKind::Closed,
            "the socket is closed; open a new XskSocket to send or receive again",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
