"""afxdp_rs: AF_XDP sockets for Python, with a Rust core.

Open an :class:`XskSocket` on an interface queue, receive batches of packets without
copying, and send batches of bytes-like packets with one call::

    import afxdp_rs

    with afxdp_rs.XskSocket("eth0", 0) as sock:
        with sock.recv(max=64, timeout=1.0) as batch:
            for frame in batch:
                print(len(frame), bytes(frame)[:14].hex())
        sock.send([b"\\xff" * 60])
        sock.flush(timeout=1.0)
"""

from __future__ import annotations

from afxdp_rs._afxdp import (
    FRAME_SIZES,
    Forwarder,
    Frame,
    RxBatch,
    VhostUser,
    XdpProgram,
    XskSocket,
    __version__,
    interface_info,
)
from afxdp_rs.errors import (
    AfXdpError,
    AfXdpWarning,
    AttachError,
    BatchInUseError,
    BatchReleasedError,
    BusyError,
    ConfigError,
    ForkedSocketError,
    InterfaceNotFoundError,
    LinkDownError,
    MemlockError,
    OffloadWarning,
    PacketSizeError,
    PrivilegeError,
    ProgramAttachedError,
    ProgramDetachedError,
    QueueError,
    SocketClosedError,
    XdpOSError,
)
from afxdp_rs.queues import open_queues

__all__ = [
    "FRAME_SIZES",
    "AfXdpError",
    "AfXdpWarning",
    "OffloadWarning",
    "AttachError",
    "BatchInUseError",
    "BatchReleasedError",
    "BusyError",
    "ConfigError",
    "ForkedSocketError",
    "Forwarder",
    "Frame",
    "InterfaceNotFoundError",
    "LinkDownError",
    "MemlockError",
    "PacketSizeError",
    "PrivilegeError",
    "ProgramAttachedError",
    "ProgramDetachedError",
    "QueueError",
    "RxBatch",
    "SocketClosedError",
    "VhostUser",
    "XdpOSError",
    "XdpProgram",
    "XskSocket",
    "__version__",
    "interface_info",
    "open_queues",
]
