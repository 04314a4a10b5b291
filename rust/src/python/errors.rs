//! The core's errors as Python exceptions. The classes are defined in Python
//! (`afxdp_rs.errors`), so users import and catch them there; each [`ErrorKind`] maps to
//! one class, and the kernel's errno stays on the exception.

use pyo3::prelude::*;

use crate::error::{Error, ErrorKind};

pyo3::import_exception!(afxdp_rs.errors, InterfaceNotFoundError);
pyo3::import_exception!(afxdp_rs.errors, QueueError);
pyo3::import_exception!(afxdp_rs.errors, ConfigError);
pyo3::import_exception!(afxdp_rs.errors, PacketSizeError);
pyo3::import_exception!(afxdp_rs.errors, SocketClosedError);
pyo3::import_exception!(afxdp_rs.errors, PrivilegeError);
pyo3::import_exception!(afxdp_rs.errors, MemlockError);
pyo3::import_exception!(afxdp_rs.errors, ProgramAttachedError);
pyo3::import_exception!(afxdp_rs.errors, AttachError);
pyo3::import_exception!(afxdp_rs.errors, ProgramDetachedError);
pyo3::import_exception!(afxdp_rs.errors, BusyError);
pyo3::import_exception!(afxdp_rs.errors, XdpOSError);
pyo3::import_exception!(afxdp_rs.errors, BatchReleasedError);
pyo3::import_exception!(afxdp_rs.errors, BatchInUseError);
pyo3::import_exception!(afxdp_rs.errors, ForkedSocketError);
pyo3::import_exception!(afxdp_rs.errors, LinkDownError);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.message().to_string();
        let err = match e.kind() {
            ErrorKind::InterfaceNotFound => InterfaceNotFoundError::new_err(msg),
            ErrorKind::InvalidQueue => QueueError::new_err(msg),
            ErrorKind::InvalidConfig => ConfigError::new_err(msg),
            ErrorKind::PacketSize => PacketSizeError::new_err(msg),
            ErrorKind::Closed => SocketClosedError::new_err(msg),
            ErrorKind::Permission => PrivilegeError::new_err(msg),
            ErrorKind::Memlock => MemlockError::new_err(msg),
            ErrorKind::ProgramAttached => ProgramAttachedError::new_err(msg),
            ErrorKind::Attach => AttachError::new_err(msg),
            ErrorKind::ProgramDetached => ProgramDetachedError::new_err(msg),
            ErrorKind::Busy => BusyError::new_err(msg),
            ErrorKind::Forked => ForkedSocketError::new_err(msg),
            ErrorKind::LinkDown => LinkDownError::new_err(msg),
            ErrorKind::Os => XdpOSError::new_err(msg),
        };
        if let Some(n) = e.errno() {
            // Keep the kernel's errno on the exception (OSError subclasses read it).
            Python::attach(|py| {
                let _ = err.value(py).setattr("errno", n);
            });
        }
        err
    }
}

/// A ConfigError with this message.
pub(super) fn config_err(msg: impl Into<String>) -> PyErr {
    ConfigError::new_err(msg.into())
}

/// Emits each advice as an `afxdp_rs.AfXdpWarning` at the caller's line: an
/// `OffloadWarning` (its subclass) where turning offloads off fixes it.
pub(super) fn warn_all(py: Python<'_>, advice: &[crate::socket::advice::Advice]) -> PyResult<()> {
    let errors = py.import("afxdp_rs.errors")?;
    let (general, offload) = (
        errors.getattr("AfXdpWarning")?,
        errors.getattr("OffloadWarning")?,
    );
    for a in advice {
        let text = std::ffi::CString::new(a.message.replace('\0', " ")).expect("no NUL left");
        let category = if a.features.is_empty() {
            &general
        } else {
            &offload
        };
        PyErr::warn(py, category, &text, 1)?;
    }
    Ok(())
}
