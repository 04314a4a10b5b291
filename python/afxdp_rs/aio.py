"""asyncio integration: an :class:`XskSocket` driven by the event loop.

The socket's descriptor is watched with ``loop.add_reader``/``loop.add_writer``, as
QEMU's backend does with its ``read_poll``/``write_poll``:

* read polling is on while someone waits in :meth:`AsyncXskSocket.recv` (or iterates
  the socket), or while a consumer set with :meth:`AsyncXskSocket.start_reading`
  accepts packets. When the consumer refuses a packet mid-batch, the packets it did
  not take are cancelled — they stay in the rx ring, in order — and read polling stops
  until the consumer calls :meth:`AsyncXskSocket.resume_reading`;
* write polling is on only while a sender waits for room (free frames or tx ring
  slots), or while packets are outstanding and the kernel asked for a wakeup to send
  them.

Works with the default event loop and with uvloop. Every call that does not wait is a
single non-blocking call into the Rust core; one call moves a whole batch.

Open sockets in the event loop's thread: the interface name is looked up in that
thread's network namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from afxdp_rs._afxdp import Frame, RxBatch, XskSocket

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self

__all__ = ["AsyncXskSocket"]

#: Batches a consumer is handed per event-loop turn before other tasks get to run.
_PUMP_BATCHES = 16


class AsyncXskSocket:
    """An :class:`XskSocket` for asyncio.

    ``AsyncXskSocket(sock)`` wraps an open socket (and owns it: closing this closes it);
    ``AsyncXskSocket.open(ifname, queue, **options)`` opens one. Use it as an async
    context manager, ``await recv()``, ``await send(packets)``, ``async for batch in
    sock``, or the consumer interface (:meth:`start_reading`).
    """

    def __init__(self, sock: XskSocket, *, batch: int = 64) -> None:
        if batch < 1:
            raise ValueError(f"batch={batch}: use at least 1")
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._batch = batch
        self._readers: list[asyncio.Future[None]] = []
        self._writers: list[asyncio.Future[None]] = []
        self._reading = False
        self._writing = False
        self._consumer: Callable[[Frame], bool] | None = None
        self._paused = False
        self._pump_scheduled = False

    @classmethod
    def open(cls, ifname: str, queue: int = 0, *, batch: int = 64, **options: Any) -> Self:
        """Opens an :class:`XskSocket` (same options) and wraps it. Call it from a
        coroutine running in the loop's thread."""
        return cls(XskSocket(ifname, queue, **options), batch=batch)

    # -- reading ------------------------------------------------------------------

    async def recv(self, max: int | None = None) -> RxBatch:
        """Waits for packets and returns a batch of up to ``max`` (never empty)."""
        limit = self._batch if max is None else max
        while True:
            batch = self.sock.recv(limit, timeout=0)
            if len(batch):
                return batch
            batch.release()
            await self._wait(self._readers)

    def __aiter__(self) -> AsyncIterator[RxBatch]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[RxBatch]:
        while True:
            yield await self.recv()

    def start_reading(self, consumer: Callable[[Frame], bool]) -> None:
        """Hands every received packet to ``consumer(frame)`` as it arrives.

        ``consumer`` returns True when it took the packet, False when it cannot take
        it now; then that packet and the rest of the batch stay in the rx ring, reading
        pauses, and resumes with :meth:`resume_reading`. Frames are valid only during
        the call: copy what you keep (``bytes(frame)``).
        """
        self._consumer = consumer
        self._paused = False
        self._schedule_pump()

    def resume_reading(self) -> None:
        """The consumer accepts packets again: deliver what waited in the ring."""
        if self._consumer is not None and self._paused:
            self._paused = False
            self._schedule_pump()

    def stop_reading(self) -> None:
        """No more deliveries to the consumer; packets stay in the ring."""
        self._consumer = None
        self._update_reading()

    @property
    def paused(self) -> bool:
        """Whether the consumer refused a packet and reading waits for resume."""
        return self._paused

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        try:
            self._deliver_batches()
        except Exception as e:
            # A failing consumer (or socket) stops deliveries: the packet it failed on
            # stays in the ring, and nothing spins on it.
            self._consumer = None
            self._fail(e, "delivering packets to the consumer")
        self._update_reading()

    def _deliver_batches(self) -> None:
        for _ in range(_PUMP_BATCHES):
            consumer = self._consumer
            if consumer is None or self._paused or self.sock.closed:
                break
            taken, stopped = self.sock.deliver(consumer, self._batch)
            if stopped:
                self._paused = True
                break
            if taken == 0:
                break  # ring empty: wait for the kernel
        else:
            self._schedule_pump()  # more may be waiting: go on after other tasks

    def _on_readable(self) -> None:
        _wake(self._readers)
        if self._consumer is not None and not self._paused:
            self._pump()
        self._update_reading()

    def _fail(self, exc: BaseException, what: str) -> None:
        """Reports a failure in a loop callback: to the waiters, else to the loop."""
        waiters = self._readers + self._writers
        self._readers, self._writers = [], []
        woke = False
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
                woke = True
        if not woke:
            self._loop.call_exception_handler(
                {"message": f"AsyncXskSocket: {what} failed", "exception": exc}
            )

    def _update_reading(self) -> None:
        want = bool(self._readers) or (self._consumer is not None and not self._paused)
        want = want and not self.sock.closed
        if want and not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
        elif not want and self._reading:
            self._loop.remove_reader(self._fd)
        self._reading = want

    # -- writing ------------------------------------------------------------------

    async def send(self, packets: Iterable[Buffer]) -> int:
        """Queues every packet, waiting (without blocking the loop) for room; returns
        how many were queued (all of them)."""
        todo = packets if isinstance(packets, list) else list(packets)
        sent = 0
        idle = 0
        while True:
            n = self.sock.send(todo[sent:] if sent else todo, timeout=0)
            sent += n
            if sent == len(todo):
                self._update_writing()
                return sent
            idle = 0 if n else idle + 1
            if idle > 2:
                # The kernel is behind: let it drain before polling again.
                await asyncio.sleep(min(0.001, 0.0001 * idle))
            else:
                await self._wait(self._writers, writing=True)

    async def flush(self) -> None:
        """Waits until every queued packet has left."""
        while not self.sock.flush(timeout=0):
            await self._wait(self._writers, writing=True)

    def _on_writable(self) -> None:
        try:
            self.sock.flush(timeout=0)  # drive the kernel and take back completed frames
        except Exception as e:
            self._fail(e, "sending")
            if self._writing:
                self._loop.remove_writer(self._fd)
                self._writing = False
            return
        _wake(self._writers)
        self._update_writing()

    def _update_writing(self) -> None:
        want = bool(self._writers)
        if not want and not self.sock.closed:
            try:
                want = self.sock.tx_outstanding > 0 and self.sock.tx_needs_wakeup
            except Exception:
                want = False
        want = want and not self.sock.closed
        if want and not self._writing:
            self._loop.add_writer(self._fd, self._on_writable)
        elif not want and self._writing:
            self._loop.remove_writer(self._fd)
        self._writing = want

    # -- common -------------------------------------------------------------------

    def _wait(
        self, waiters: list[asyncio.Future[None]], *, writing: bool = False
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._loop.create_future()
        waiters.append(fut)
        if writing:
            self._update_writing()
        else:
            self._update_reading()
        return fut

    def close(self) -> None:
        """Stops polling, wakes waiters with an error and closes the socket."""
        self._consumer = None
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self.sock.close()
        for fut in self._readers + self._writers:
            if not fut.done():
                fut.cancel()
        self._readers.clear()
        self._writers.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()
