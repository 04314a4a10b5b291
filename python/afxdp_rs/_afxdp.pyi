"""Type stubs of the compiled core (rust/src/python)."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, SupportsBytes, TypeAlias, final

from typing_extensions import Buffer, Self

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
    attaches it, None when attached through netlink) and ``holders``, the processes
    holding that link as (pid, command) pairs."""

def detach_program(ifname: str) -> dict[str, Any]:
    """Removes afxdp_rs's XDP program from the interface and returns what was attached
    (as xdp_status). Any other program stays: ProgramAttachedError says whose it is."""

@final
class XskSocket:
    """An AF_XDP socket on one queue of one interface."""

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
    def closed(self) -> bool: ...
    @property
    def napi_id(self) -> int: ...
    def __new__(
        cls,
        ifname: str,
        queue: int = 0,
        *,
        mode: str = "auto",
        bind: str = "auto",
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
    ) -> Self: ...
    def set_match(self, filter: str | None) -> None: ...
    @property
    def match(self) -> str | None: ...
    def recv(self, max: int = 64, timeout: float | None = None, linger: float = 0.0) -> RxBatch: ...
    def l2fwd(self, max: int = 64, swap_macs: bool = True) -> int: ...
    def send_packed(self, data: Buffer, lengths: Buffer, timeout: float | None = None) -> int: ...
    def rust_rxdrop(
        self, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
    ) -> dict[str, float]: ...
    def rust_txonly(self, packet: bytes, duration: float, batch: int = 64) -> dict[str, float]: ...
    def rust_l2fwd(
        self, duration: float, batch: int = 64, poll: bool = False, linger: float = 0.0
    ) -> dict[str, float]: ...
    def sequence_check(
        self,
        template: bytes,
        count: int,
        batch: int = 64,
        window: int = 0,
        swapped: bool = True,
        quiet: float = 1.0,
    ) -> dict[str, float]: ...
    def stop_loop(self) -> None: ...
    def send(
        self, packets: Iterable[Buffer | SupportsBytes], timeout: float | None = None
    ) -> int: ...
    def flush(self, timeout: float | None = None) -> bool: ...
    def deliver(self, consumer: Callable[[Frame], bool], max: int = 64) -> tuple[int, bool]: ...
    @property
    def tx_needs_wakeup(self) -> bool: ...
    @property
    def tx_outstanding(self) -> int: ...
    def wait_readable(self, timeout: float | None = None) -> bool: ...
    def statistics(self) -> dict[str, int]: ...
    def fileno(self) -> int: ...
    def _post_fill_unchecked(self, addr: int) -> None: ...
    def _post_tx_unchecked(self, addr: int, len: int) -> None: ...
    def close(self) -> None: ...
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
    def released(self) -> bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: int, /) -> Frame: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def lengths(self) -> list[int]: ...
    def checksums(self) -> list[_Checksum]: ...
    def timestamps(self) -> list[float | None]: ...
    def copy_into(self, data: Buffer, lengths: Buffer) -> int: ...
    def to_list(self) -> list[bytes]: ...
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
    def release(self) -> None: ...
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
    def addr(self) -> int: ...
    @property
    def checksum(self) -> _Checksum: ...
    @property
    def nsegments(self) -> int: ...
    @property
    def timestamp(self) -> float | None: ...
    def segments(self) -> list[memoryview]: ...
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
    def __new__(cls, ifname: str, mode: str = "auto") -> Self: ...
    @property
    def xsks_map_fd(self) -> int: ...
    @property
    def link_fd(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def register(self, queue: int, sock_fd: int) -> None: ...
    def unregister(self, queue: int) -> None: ...
    def pin_map(self, path: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Forwarder:
    """Forwards every frame between two interfaces, both ways, without copying it."""

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
        mode: str = "auto",
        bind: str = "auto",
        frame_size: int = 4096,
        frame_count: int = 4096,
        batch: int = 64,
        complete_checksums: bool = True,
        fix_offloads: bool = False,
    ) -> Self: ...
    def statistics(self) -> list[dict[str, Any]]: ...
    @property
    def running(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def stop(self) -> None: ...
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
        mode: str = "auto",
        bind: str = "auto",
        frame_size: int = 4096,
        frame_count: int = 4096,
        mac: str | None = None,
        queue_size: int = 1024,
        mtu: int | None = None,
        fix_offloads: bool = False,
    ) -> Self: ...
    def statistics(self) -> list[dict[str, Any]]: ...
    @property
    def connected(self) -> bool: ...
    @property
    def connections(self) -> int: ...
    def events(self, start: int = 0) -> list[str]: ...
    @property
    def running(self) -> bool: ...
    def wait_connected(self, timeout: float | None = None, *, connected: bool = True) -> bool: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
