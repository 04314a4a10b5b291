"""The test rig: benchmark loops and a sequence check that run entirely in Rust on an
:class:`~afxdp_rs.XskSocket` (the GIL released; Ctrl-C, :func:`stop_loop` or closing
the socket ends them early), and hooks that provoke the kernel's counters. They are
tools for measuring and testing the library, not part of the socket's API.

    from afxdp_rs import tools
    stats = tools.rxdrop(sock, 2.0)             # packets, bytes, seconds, cpu_seconds
"""

from __future__ import annotations

from afxdp_rs import _afxdp
from afxdp_rs._afxdp import XskSocket

__all__ = [
    "drain",
    "hide_tx_wakeups",
    "l2fwd",
    "post_fill_unchecked",
    "post_tx_unchecked",
    "rxdrop",
    "sequence_check",
    "stop_loop",
    "txonly",
]


def rxdrop(
    sock: XskSocket, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
) -> dict[str, float]:
    """Receives and drops packets for `duration` seconds, `batch` at a time, spinning
    (or with `poll`, sleeping in poll(2) when nothing came; `linger`: waiting that long
    after a batch that was not full). Returns packets, bytes, seconds, cpu_seconds."""
    return _afxdp._rig_rxdrop(sock, duration, batch, poll, linger)


def txonly(sock: XskSocket, packet: bytes, duration: float, batch: int = 64) -> dict[str, float]:
    """Sends `packet` over and over in batches for `duration` seconds; counts what the
    kernel completed."""
    return _afxdp._rig_txonly(sock, packet, duration, batch)


def l2fwd(
    sock: XskSocket, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
) -> dict[str, float]:
    """Sends every received packet back out of the socket with its MAC addresses
    swapped, for `duration` seconds (waiting as :func:`rxdrop` does)."""
    return _afxdp._rig_l2fwd(sock, duration, batch, poll, linger)


def sequence_check(
    sock: XskSocket,
    template: bytes,
    count: int,
    batch: int = 64,
    window: int = 0,
    swapped: bool = True,
    quiet: float = 1.0,
) -> dict[str, float]:
    """Sends `count` numbered packets and checks every packet that comes back to the
    socket (through a forwarder on the other side of the link, or a loop): each byte,
    and that sequence numbers only go up. `template`'s first 42 bytes (Ethernet, IPv4,
    UDP headers) start every packet; an 8-byte sequence number and a pattern follow, up
    to ``len(template)``. `window`: at most this many packets in flight (0: as fast as
    possible). `swapped`: expect the MAC addresses exchanged (an L2 forwarder's
    answer). Ends when everything is back, or when nothing arrived for `quiet` seconds
    while all were sent or the window was full (then ``sent < count``: the far side
    stopped answering). Returns sent, received, missing, out_of_order, corrupted,
    max_in_flight, seconds."""
    return _afxdp._rig_sequence_check(sock, template, count, batch, window, swapped, quiet)


def drain(sock: XskSocket, batch: int = 64) -> tuple[int, int]:
    """Empties the rx ring through the Rust API (receive, recycle), `batch` packets at
    a time, without waiting; returns (packets, nanoseconds)."""
    return _afxdp._rig_drain(sock, batch)


def stop_loop(sock: XskSocket) -> None:
    """Ends the Rust loop another thread is running on `sock` as soon as it finishes its
    current batch; that call returns what it did so far. The socket stays open. When no
    loop runs yet (the thread that starts one has not got there), the next loop to
    start ends at once: a stop right after starting a thread is never lost."""
    _afxdp._rig_stop_loop(sock)


def post_fill_unchecked(sock: XskSocket, addr: int) -> None:
    """Puts `addr` on the fill ring without any check (taking it out of the socket's
    pool if it is there): to provoke the kernel's invalid-descriptor counters."""
    _afxdp._rig_post_fill_unchecked(sock, addr)


def post_tx_unchecked(sock: XskSocket, addr: int, length: int) -> None:
    """Puts a tx descriptor on the ring without any check and kicks the kernel: to
    provoke the kernel's invalid-descriptor counters."""
    _afxdp._rig_post_tx_unchecked(sock, addr, length)


def hide_tx_wakeups(hidden: bool) -> None:
    """While `hidden`, every socket of the process skips the tx kicks the kernel asks
    for (a lost wakeup, on purpose); only the re-kick of a stalled sender still
    reaches the kernel (counted in ``statistics()["tx_rekicks"]``)."""
    _afxdp._hide_tx_wakeups(hidden)
