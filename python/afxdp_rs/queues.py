"""Several queues at once: one socket per queue, as QEMU's ``queues=N,start-queue=M``."""

from __future__ import annotations

from typing import Any

from afxdp_rs._afxdp import XskSocket, queue_range
from afxdp_rs.errors import ConfigError

__all__ = ["open_queues"]


def open_queues(
    ifname: str,
    queues: int = 1,
    start_queue: int = 0,
    *,
    shared_umem: bool = False,
    frame_count: int = 4096,
    **options: Any,
) -> list[XskSocket]:
    """Opens one socket per queue ``start_queue .. start_queue + queues - 1``.

    Every socket gets ``frame_count`` frames. With ``shared_umem=False`` each has its own
    UMEM; with ``shared_umem=True`` the first socket's UMEM holds ``queues *
    frame_count`` frames and the others bind to it with ``XDP_SHARED_UMEM``, each with
    its own fill and completion rings and its own range of frames (``sock.frames``).
    All sockets share one XDP program on the interface. ``options`` are passed to
    every :class:`XskSocket` (``mode``, ``bind``, ring sizes, ...).

    The range is checked first, against the queues the interface has (QueueError
    names what fits). If one socket cannot be opened, those already open are closed
    and the error is raised.
    """
    if not isinstance(frame_count, int) or frame_count < 1:
        raise ConfigError(f"frame_count={frame_count!r}: use at least one frame per queue")
    sockets: list[XskSocket] = []
    try:
        for i, queue in enumerate(queue_range(ifname, queues, start_queue)):
            if not shared_umem:
                sockets.append(XskSocket(ifname, queue, frame_count=frame_count, **options))
            elif i == 0:
                sockets.append(
                    XskSocket(
                        ifname,
                        queue,
                        frame_count=frame_count * queues,
                        frames=(0, frame_count),
                        **options,
                    )
                )
            else:
                shared = {k: v for k, v in options.items() if k not in _UMEM_OPTIONS}
                sockets.append(
                    XskSocket(
                        ifname,
                        queue,
                        shared_umem=sockets[0],
                        frames=(i * frame_count, (i + 1) * frame_count),
                        **shared,
                    )
                )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# Settings a socket sharing a UMEM takes from the UMEM's owner.
_UMEM_OPTIONS = {"frame_size", "headroom", "bind", "need_wakeup"}
