"""Type stubs of the compiled core (rust/src/python)."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, SupportsBytes, TypeAlias, final

from typing_extensions import Buffer

from afxdp_rs.types import BindMode, XdpMode

__all__ = [
    "FRAME_SIZES",
    "Forwarder",
    "Frame",
    "PacketArray",
    "RxBatch",
    "Segment",
    "UmemView",
    "VhostUser",
    "XdpProgram",
    "XskSocket",
    "interface_info",
    "xdp_status",
    "detach_program",
    "queue_range",
    "__version__",
]

__version__: str
FRAME_SIZES: list[int]

_Checksum: TypeAlias = Literal["complete", "partial", "wrong", "absent", "not_applicable"]

def interface_info(ifname: str) -> dict[str, Any]:
    """What the kernel says of an interface of this network namespace: ``ifname``,
    ``ifindex``, ``driver``, ``mtu``, ``rx_queues``/``tx_queues`` (None where the driver
    does not say), ``xdp_mode`` ("none", "native", "skb", "hw", "multi") and
    ``xdp_prog_id`` of the attached program (0: none), ``native_xdp`` and ``zerocopy``
    (from the driver's XDP features; None where it does not say) and ``xdp_features``
    (the raw bits). Raises InterfaceNotFoundError for an unknown name."""

def xdp_status(ifname: str) -> dict[str, Any]:
    """What is attached to the interface's XDP hook: ``prog_id`` (0: nothing),
    ``name``, ``mode``, ``ours`` (afxdp_rs's program), ``link_id`` (the BPF link that
    attaches it, None when attached through netlink), ``holders``, the processes
    holding that link as (pid, command) pairs, and ``queues``: for afxdp_rs's program,
    each rx queue a socket takes packets of (``queue``, ``takes``: the filter in
    tcpdump's words, None for every packet; ``timestamps``)."""

def detach_program(ifname: str) -> dict[str, Any]:
    """Removes afxdp_rs's XDP program from the interface and returns what was attached
    (as xdp_status). Any other program stays: ProgramAttachedError says whose it is."""

def queue_range(ifname: str, queues: int = 1, start_queue: int = 0) -> list[int]:
    """The queue ids ``start_queue .. start_queue + queues`` of the interface, checked
    once for every user of a set of queues: at least one, no overflow, each a queue the
    interface has (QueueError names the range and what fits)."""

def _socket_defaults() -> dict[str, Any]:
    """The defaults of the socket arguments, by name (the signatures are checked
    against them)."""

# The test rig, wrapped by afxdp_rs.tools.
def _rig_rxdrop(
    sock: XskSocket, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
) -> dict[str, float]: ...
def _rig_txonly(
    sock: XskSocket, packet: bytes, duration: float, batch: int = 64
) -> dict[str, float]: ...
def _rig_l2fwd(
    sock: XskSocket, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
) -> dict[str, float]: ...
def _rig_sequence_check(
    sock: XskSocket,
    template: bytes,
    count: int,
    batch: int = 64,
    window: int = 0,
    swapped: bool = True,
    quiet: float = 1.0,
) -> dict[str, float]: ...
def _rig_stop_loop(sock: XskSocket) -> None: ...
def _rig_drain(sock: XskSocket, batch: int) -> tuple[int, int]: ...
def _rig_post_fill_unchecked(sock: XskSocket, addr: int) -> None: ...
def _rig_post_tx_unchecked(sock: XskSocket, addr: int, len: int) -> None: ...
def _hide_tx_wakeups(hidden: bool) -> None:
    """For tests only: while `hidden`, every socket of the process skips the tx kicks
    the kernel asks for (a lost wakeup, on purpose); only the re-kick of a stalled
    sender still reaches the kernel."""

@final
class XskSocket:
    """An AF_XDP socket on one queue of one interface.

    ``XskSocket(ifname, queue=0, *, mode="auto", bind="auto", ...)``: ``mode`` is the
    XDP attach mode ("native", "skb", or "auto": native, else skb); ``bind`` copy or
    zero-copy ("copy", "zerocopy", or "auto": the kernel's choice, see ``zerocopy``);
    ``frame_size`` (2048 or 4096) and ``frame_count`` shape the UMEM; ``fill_size``,
    ``comp_size``, ``rx_size``, ``tx_size`` the rings (``rx_size=0``: send only,
    ``tx_size=0``: receive only); ``match`` takes only the packets that match a
    tcpdump-style filter; ``timestamps`` stamps each packet at XDP;
    ``complete_checksums`` finishes partial checksums; ``multi_buffer`` lets packets
    span frames (jumbo frames); ``busy_poll`` asks for preferred busy polling.
    ``sock_fd``/``xsks_map_fd``/``xsks_map_path``/``inhibit``/``shared_umem``/
    ``frames``/``hold_fds`` are for sockets prepared by another process or sharing a
    UMEM (QEMU's options). Every bad value raises an error naming it. Close it with
    ``close()`` or a ``with`` block."""

    ifname: str
    queue: int
    zerocopy: bool
    multi_buffer: bool
    attach_mode: Literal["native", "skb"] | None
    frame_size: int
    max_packet: int
    frames: tuple[int, int]
    warnings: list[str]
    offload_changes: list[str]
    busy_poll: bool
    @property
    def closed(self) -> bool:
        """Whether close() was called (or the object was closed otherwise)."""
    @property
    def napi_id(self) -> int:
        """The NAPI ID the kernel gave the socket with its packets: 0 before the first
        packet, and always on devices without NAPI IDs (veth, skb mode), where
        busy_poll has no effect.
        """
    def __new__(
        cls,
        ifname: str,
        queue: int = 0,
        *,
        mode: XdpMode = "auto",
        bind: BindMode = "auto",
        frame_size: int = 4096,
        frame_count: int = 4096,
        headroom: int = 0,
        fill_size: int = 2048,
        comp_size: int = 2048,
        rx_size: int = 2048,
        tx_size: int = 2048,
        need_wakeup: bool = True,
        load_program: bool = True,
        inhibit: bool = False,
        sock_fd: int | None = None,
        xsks_map_fd: int | None = None,
        xsks_map_path: str | None = None,
        shared_umem: XskSocket | None = None,
        frames: tuple[int, int] | None = None,
        hold_fds: list[int] | None = None,
        complete_checksums: bool = False,
        fix_offloads: bool = False,
        multi_buffer: bool | Literal["auto"] | None = None,
        match: str | None = None,
        timestamps: bool = False,
        busy_poll: bool = False,
        busy_poll_usecs: int = 20,
        busy_poll_budget: int = 64,
        link_down: Literal["wait", "raise"] = "wait",
    ) -> Self: ...
    @property
    def link_up(self) -> bool:
        """Whether the socket's interface is up, asked of the kernel now. A socket whose
        link is down stays usable; a removed interface raises XdpOSError."""
    def set_match(self, filter: str | None) -> None:
        """Takes only the packets of the queue that match `filter`, a filter in tcpdump's
        words ("udp and dst port 4789", "icmp or port 53"), or all of them with None;
        the others go to the kernel stack. Replaces the rules at once, under traffic.
        """
    @property
    def match(self) -> str | None:
        """The filter this socket takes packets by (as rules, in tcpdump's words), or None
        when it takes all of its queue's packets.
        """
    def recv(self, max: int = 64, timeout: float | None = None, linger: float = 0.0) -> RxBatch:
        """Receives up to `max` packets as one batch, waiting up to `timeout` seconds
        (None: until a packet arrives; 0: not at all). The batch may be empty when the
        time ran out. Frames stay owned by the batch until it is released.
        """
    def l2fwd(self, max: int = 64, swap_macs: bool = True) -> int:
        """Sends up to `max` received packets back out of this socket, without copying,
        with the Ethernet source and destination swapped (`swap_macs`): an L2 "reflector"
        done in one call per batch. Never waits; returns how many were forwarded.
        """
    def send_packed(self, data: Buffer, lengths: Buffer, timeout: float | None = None) -> int:
        """Sends packets laid end to end in one buffer: packet i is the next
        `lengths[i]` bytes of `data` (`lengths`: a buffer of uint32, e.g. a numpy array).
        One call, no Python object per packet. Waits as `send` does; returns how many
        were queued.
        """
    def send(self, packets: Iterable[Buffer | SupportsBytes], timeout: float | None = None) -> int:
        """Sends bytes-like packets (bytes, bytearray, memoryview, Frame, or objects with
        `__bytes__`). Waits up to `timeout` seconds (None: as long as needed) for free
        frames and tx ring space; returns how many were queued, which is fewer than
        given only when the time ran out or the link went down during the call (the next
        call then raises LinkDownError). A list or tuple is checked whole before any
        packet is queued; any other iterable is taken in chunks of 256. An exception
        (a bad packet, or one the iterator raised) says on its `queued` attribute how
        many packets of the call were queued before it.
        """
    def flush(self, timeout: float | None = None) -> bool:
        """Waits up to `timeout` seconds (None: as long as needed) until every queued
        packet has left (is on the completion ring). Returns whether all did.
        """
    def deliver(self, consumer: Callable[[Frame], bool], max: int = 64) -> tuple[int, bool]:
        """Hands up to `max` received packets, one at a time, to `consumer(frame)`, which
        returns True when it took the packet, False when it cannot take it now. At the
        first False the rest are cancelled: they stay in the rx ring, in order, for the
        next recv()/deliver() (nothing is lost; the kernel counts what does not fit
        while the ring is full). Frames are valid only during the call: copy what you
        keep. Returns (packets taken, whether the consumer stopped). Never waits.
        """
    @property
    def tx_needs_wakeup(self) -> bool:
        """Whether the kernel asked for a system call to go on sending (with frames
        outstanding, a writer should poll the socket for POLLOUT).
        """
    @property
    def tx_outstanding(self) -> int:
        """Packets queued for sending that the kernel has not completed yet."""
    def wait_readable(self, timeout: float | None = None) -> bool:
        """Waits up to `timeout` seconds for a packet to receive; returns whether one is
        there. Packets stay in the ring for the next recv().
        """
    def statistics(self) -> dict[str, int]:
        """The kernel's XDP_STATISTICS counters and the library's own, as a dict."""
    def fileno(self) -> int:
        """The socket's file descriptor (for select/poll/selectors and asyncio)."""
    def close(self) -> None:
        """Closes the socket: unregisters it from the XDP program (detaching the program
        if this was the last socket of the interface) and frees the rings. Batches
        still held stay readable until released. Closing twice is allowed.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class RxBatch:
    """Packets received by one recv() call; release to give the frames back."""

    @property
    def released(self) -> bool:
        """Whether the batch was released (its frames went back to the socket)."""
    def __len__(self) -> int: ...
    def __getitem__(self, key: int, /) -> Frame: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def lengths(self) -> list[int]:
        """The length of each packet."""
    def checksums(self) -> list[_Checksum]:
        """What each packet's TCP/UDP checksum says: "complete", "partial" (left unfinished
        by a sender that offloads checksums), "wrong", "absent" (UDP without one) or
        "not_applicable" (not TCP/UDP, a fragment). Reads every byte: a check, not free.
        """
    def timestamps(self) -> list[float | None]:
        """When each packet reached XDP, as seconds since the epoch (time.time()'s clock),
        or None for each when the socket was opened without timestamps=True.
        """
    def copy_into(self, data: Buffer, lengths: Buffer) -> int:
        """Copies the packets end to end into the writable buffer `data` and their lengths
        into `lengths` (a writable uint32 buffer with room for len(batch) entries), e.g.
        numpy arrays. Returns the bytes written.
        """
    def to_list(self) -> list[bytes]:
        """Copies every packet out as a list of bytes."""
    def offsets(self) -> PacketArray:
        """Each packet's UMEM offset, a read-only uint64 array (zero-copy)."""
    def lengths_array(self) -> PacketArray:
        """Each packet's length, a read-only uint32 array (zero-copy)."""
    def umem(self) -> UmemView:
        """A read-only view of the whole UMEM, to index with offsets(); a view of
        the batch's frames (release it before the batch)."""
    def field(self, offset: int, size: int) -> bytes:
        """The `size` bytes at `offset` of every packet, end to end (zeros where a
        packet is shorter)."""
    def release(self) -> None:
        """Gives the frames back to the kernel (fill ring). Raises BatchInUseError while
        a memoryview of one of its frames is alive. Releasing twice is allowed.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Frame:
    """One received packet: a writable zero-copy buffer over its UMEM frame."""

    @property
    def addr(self) -> int:
        """Offset of the packet (of its first frame) in the UMEM."""
    @property
    def checksum(self) -> _Checksum:
        """What the packet's TCP/UDP checksum says: "complete", "partial", "wrong",
        "absent" or "not_applicable" (see RxBatch.checksums).
        """
    @property
    def nsegments(self) -> int:
        """How many frames the packet spans: 1, or more for a multi-buffer packet (jumbo
        frames), whose bytes are read with `segments()` or `bytes(frame)`.
        """
    @property
    def timestamp(self) -> float | None:
        """When the packet reached XDP, as seconds since the epoch (time.time()'s clock), or
        None when the socket was opened without timestamps=True.
        """
    def segments(self) -> list[memoryview]:
        """Zero-copy views of the packet's segments, one per frame, in order (one for an
        ordinary packet). The same rules as for memoryview(frame): release them before
        the batch.
        """
    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class PacketArray:
    """A batch's packet offsets (uint64) or lengths (uint32) as a read-only buffer."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class UmemView:
    """A read-only buffer over the whole UMEM, alive as a view of a batch."""

    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class Segment:
    """One frame of a multi-buffer packet (a zero-copy buffer)."""

    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class XdpProgram:
    """The default XDP program attached on its own (for a privileged helper)."""

    ifname: str
    mode: Literal["native", "skb"]
    prog_id: int
    def __new__(cls, ifname: str, mode: XdpMode = "auto") -> Self: ...
    @property
    def xsks_map_fd(self) -> int:
        """The XSKMAP's descriptor (owned by this object: duplicate it to keep it)."""
    @property
    def link_fd(self) -> int:
        """The BPF link's descriptor: the program is attached while it is open anywhere."""
    @property
    def closed(self) -> bool:
        """Whether close() was called (or the object was closed otherwise)."""
    def register(self, queue: int, sock_fd: int) -> None:
        """Routes packets of rx queue `queue` to the AF_XDP socket `sock_fd`."""
    def unregister(self, queue: int) -> None:
        """Stops routing packets of `queue` to a socket."""
    def pin_map(self, path: str) -> None:
        """Pins the XSKMAP at `path` (on a bpf filesystem) for other processes."""
    def close(self) -> None:
        """Releases this process's hold on the program: it is detached unless another
        process still holds a duplicate of its link.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Forwarder:
    """Forwards every frame between two interfaces, both ways, without copying it
    (``busy_poll=True``: an idle thread busy-polls both devices instead of sleeping)."""

    interfaces: tuple[str, str]
    warnings: list[str]
    offload_changes: list[str]
    def __new__(
        cls,
        if_a: str,
        if_b: str,
        *,
        queues: int = 1,
        start_queue: int = 0,
        mode: XdpMode = "auto",
        bind: BindMode = "auto",
        frame_size: int = 4096,
        frame_count: int = 4096,
        batch: int = 64,
        complete_checksums: bool = True,
        fix_offloads: bool = False,
        busy_poll: bool = False,
        busy_poll_usecs: int = 20,
        busy_poll_budget: int = 64,
    ) -> Self: ...
    def statistics(self) -> list[dict[str, Any]]:
        """One dict per direction and queue: queue, from, to, packets, bytes, checksums
        (partial checksums completed), and the kernel counters of the receiving socket
        (rx: rx_dropped, rx_ring_full, ...) and of the sending one (tx); from_down
        (the receiving interface was down at the last look: forwarding resumes when it is
        up), from_downs (how many times it went down) and zerocopy (both sockets of the
        direction are bound in zero-copy).
        """
    @property
    def running(self) -> bool:
        """Whether every queue pair is still forwarding (one that failed has ended:
        `stop()` raises its error).
        """
    def wait(self, timeout: float | None = None) -> bool:
        """Waits up to `timeout` seconds (None: for ever) while every pair forwards;
        returns False when the time ran out, True as soon as a pair has ended (then
        call `stop()` for its error). Ctrl-C interrupts it.
        """
    def stop(self) -> None:
        """Stops forwarding, waits for the threads and closes the sockets; raises the
        error that ended a pair, if one did. Stopping twice is fine.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class VhostUser:
    """A vhost-user-net device whose queue pairs are AF_XDP sockets on an interface."""

    interface: str
    socket_path: Path
    client: bool
    warnings: list[str]
    offload_changes: list[str]
    def __new__(
        cls,
        interface: str,
        socket_path: str | os.PathLike[str],
        *,
        queues: int = 1,
        start_queue: int = 0,
        client: bool = False,
        mode: XdpMode = "auto",
        bind: BindMode = "auto",
        frame_size: int = 4096,
        frame_count: int = 4096,
        mac: str | None = None,
        queue_size: int = 1024,
        mtu: int | None = None,
        fix_offloads: bool = False,
    ) -> Self: ...
    def statistics(self) -> list[dict[str, Any]]:
        """One dict per queue pair: queue, then the device's counters (tx_*: sent by the
        guest, out of the interface; rx_*: received by the guest): tx_packets,
        tx_bytes, tx_drop_bad_chain, tx_drop_too_large, tx_drop_port_refused,
        tx_port_full (times the guest waited for tx room, not a drop), rx_packets,
        rx_bytes, rx_bad_chain, rx_drop_too_large, rx_no_buffers (times a packet waited
        for guest buffers, not a drop), ring_errors; and kernel, the AF_XDP socket's
        kernel counters (rx_dropped, rx_ring_full, ...).
        """
    @property
    def connected(self) -> bool:
        """Whether a frontend is connected now."""
    @property
    def connections(self) -> int:
        """Connections served so far, the current one included."""
    def events(self, start: int = 0) -> list[str]:
        """What happened to connections, oldest first: the events numbered `start` and
        later, counting from 0 (only the last 64 are kept). A reader that remembers how
        many it has seen passes that number to get only the new ones.
        """
    @property
    def running(self) -> bool:
        """Whether the device is still being served (a failure ends it: `stop()` raises
        the error).
        """
    def wait_connected(self, timeout: float | None = None, *, connected: bool = True) -> bool:
        """Waits up to `timeout` seconds (None: for ever) until a frontend is connected
        (`connected=True`, the default) or until none is; returns whether that
        happened. Ctrl-C interrupts it.
        """
    def stop(self) -> None:
        """Ends the connection, stops serving, closes the sockets (the XDP program goes
        with the last one) and removes the socket file it listened on; raises the error
        that ended serving, if one did. Stopping twice is fine.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
