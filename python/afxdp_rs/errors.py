"""Exceptions raised by afxdp_rs.

Every exception derives from :class:`AfXdpError` and from the built-in exception a
Python user would expect (``ValueError`` for bad arguments, ``PermissionError`` for
missing privileges, ``OSError`` for system failures), so both ``except AfXdpError`` and
the usual built-in handlers work. Messages name the offending value and say what to do.
"""

from __future__ import annotations

__all__ = [
    "AfXdpError",
    "AfXdpWarning",
    "OffloadWarning",
    "AttachError",
    "BatchInUseError",
    "BatchReleasedError",
    "BusyError",
    "ConfigError",
    "ForkedSocketError",
    "InterfaceNotFoundError",
    "LinkDownError",
    "MemlockError",
    "PacketSizeError",
    "PrivilegeError",
    "ProgramAttachedError",
    "ProgramDetachedError",
    "QueueError",
    "SocketClosedError",
    "XdpOSError",
]


class AfXdpWarning(UserWarning):
    """Something about an interface makes packets arrive unfinished or too large (partial
    checksums, superpackets, an MTU larger than a frame). The message says what happens
    and gives the command that fixes it; ``fix_offloads=True`` applies it. Also in
    ``sock.warnings``."""


class OffloadWarning(AfXdpWarning):
    """An offload makes packets arrive unfinished or too large; ``fix_offloads=True``
    (or the ethtool command the message names) turns it off."""


class AfXdpError(Exception):
    """Base class of every afxdp_rs error.

    ``errno`` is the kernel's error number when a system call failed, else None.
    """

    errno: int | None = None


class InterfaceNotFoundError(AfXdpError, LookupError):
    """No network interface of that name in the current network namespace."""


class QueueError(AfXdpError, ValueError):
    """The interface has no queue of that id."""


class ConfigError(AfXdpError, ValueError):
    """A size, count, mode or timeout is not valid."""


class PacketSizeError(AfXdpError, ValueError):
    """A packet is larger than a frame (or the MTU allows), or too short to send."""


class SocketClosedError(AfXdpError, ValueError):
    """The socket was closed."""


class PrivilegeError(AfXdpError, PermissionError):
    """A capability is missing (CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON)."""


class MemlockError(AfXdpError, OSError):
    """The UMEM could not be registered: RLIMIT_MEMLOCK is too low."""


class ProgramAttachedError(AfXdpError, RuntimeError):
    """Another XDP program is attached to the interface; afxdp_rs never replaces it."""


class ProgramDetachedError(AfXdpError, RuntimeError):
    """The XDP program that steered packets to the socket was detached by someone else
    while the socket was open: no packet reaches it any more. Close it and open a new
    one."""


class AttachError(AfXdpError, OSError):
    """The XDP program could not be loaded or attached in the requested mode."""


class BusyError(AfXdpError, OSError):
    """The queue is in use by another AF_XDP socket."""


class ForkedSocketError(AfXdpError, RuntimeError):
    """A socket (or Forwarder) opened before ``os.fork()`` was used in the child: its
    rings are shared with the parent, so the child must open its own (``close()`` is
    allowed and leaves the parent's socket alone)."""


class XdpOSError(AfXdpError, OSError):
    """Any other failed system call."""


class LinkDownError(AfXdpError, OSError):
    """The socket's interface is down. The socket stays usable: it receives and sends
    again once the link is up (a cable pulled for a second, a NIC reset, a veth going
    down and up). Raised by ``send`` once the socket has seen the link down (from then
    on nothing is queued until it is up), and by ``recv`` only on a socket opened with
    ``link_down="raise"``."""


class BatchReleasedError(AfXdpError, ValueError):
    """A frame was used after its batch went back to the kernel."""


class BatchInUseError(AfXdpError, BufferError):
    """A batch cannot be released while memoryviews of its frames are alive."""
