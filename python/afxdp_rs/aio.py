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
  them. When a writable socket makes no progress (the kernel cannot send yet), write
  polling pauses and retries after a short, growing delay instead of spinning;
* while anyone waits, the socket is probed every :data:`PROBE_INTERVAL` seconds: an
  interface that went away or down, or an XDP program detached by another tool, never
  makes the descriptor readable, so the probe is what reports it (to the waiters, or
  to the loop's exception handler).

Closing the socket wakes every waiter with :class:`~afxdp_rs.errors.SocketClosedError`.

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
from afxdp_rs.errors import SocketClosedError

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Buffer

__all__ = ["AsyncXskSocket"]

#: Batches a consumer is handed per event-loop turn before other tasks get to run.
_PUMP_BATCHES = 16
#: Seconds between checks that a socket someone waits on still works.
PROBE_INTERVAL = 0.25
#: First and longest pause of write polling while the kernel makes no progress.
_WRITE_RETRY_MIN = 0.0005
_WRITE_RETRY_MAX = 0.01


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
        self._probe: asyncio.TimerHandle | None = None
        self._write_retry: asyncio.TimerHandle | None = None
        self._write_delay = _WRITE_RETRY_MIN
        self._closed = False

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
            self._check_open()
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
        self._check_open()
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
        self._update_probe()

    def _check_open(self) -> None:
        if self._closed or self.sock.closed:
            raise SocketClosedError(
                "the socket is closed; open a new AsyncXskSocket to send or receive again"
            )

    # -- probing ------------------------------------------------------------------

    def _update_probe(self) -> None:
        """Probes while anyone waits (or a consumer reads), and only then."""
        want = not self.sock.closed and (self._reading or self._writing or bool(self._writers))
        if want and self._probe is None:
            self._probe = self._loop.call_later(PROBE_INTERVAL, self._run_probe)
        elif not want and self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _run_probe(self) -> None:
        self._probe = None
        try:
            # Returns at once; raises when the socket stopped working (interface gone
            # or down, XDP program detached), which poll alone never shows.
            self.sock.wait_readable(timeout=0)
        except Exception as e:
            self._consumer = None
            self._stop_polling()
            self._fail(e, "checking the socket")
            return
        self._update_probe()

    def _stop_polling(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        for handle in (self._probe, self._write_retry):
            if handle is not None:
                handle.cancel()
        self._probe = self._write_retry = None

    # -- writing ------------------------------------------------------------------

    async def send(self, packets: Iterable[Buffer]) -> int:
        """Queues every packet, waiting (without blocking the loop) for room; returns
        how many were queued (all of them)."""
        todo = packets if isinstance(packets, list) else list(packets)
        sent = 0
        idle = 0
        while True:
            self._check_open()
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
        while True:
            self._check_open()
            if self.sock.flush(timeout=0):
                return
            await self._wait(self._writers, writing=True)

    def _on_writable(self) -> None:
        try:
            before = self.sock.tx_outstanding
            # Drive the kernel and take back completed frames.
            self.sock.flush(timeout=0)
            progress = self.sock.tx_outstanding < before or before == 0
        except Exception as e:
            self._fail(e, "sending")
            self._stop_polling()
            return
        _wake(self._writers)
        if progress:
            self._write_delay = _WRITE_RETRY_MIN
        elif self._write_retry is None:
            # The descriptor is writable but the kernel could not send: polling again
            # at once would spin. Pause write polling and retry after a growing delay.
            if self._writing:
                self._loop.remove_writer(self._fd)
                self._writing = False
            self._write_retry = self._loop.call_later(self._write_delay, self._retry_writing)
            self._write_delay = min(self._write_delay * 2, _WRITE_RETRY_MAX)
            self._update_probe()
            return
        self._update_writing()

    def _retry_writing(self) -> None:
        self._write_retry = None
        if not self.sock.closed:
            self._on_writable()

    def _update_writing(self) -> None:
        want = bool(self._writers)
        if not want and not self.sock.closed:
            try:
                want = self.sock.tx_outstanding > 0 and self.sock.tx_needs_wakeup
            except Exception:
                want = False
        # While a retry is pending, the retry timer stands in for write polling.
        want = want and not self.sock.closed and self._write_retry is None
        if want and not self._writing:
            self._loop.add_writer(self._fd, self._on_writable)
        elif not want and self._writing:
            self._loop.remove_writer(self._fd)
        self._writing = want
        self._update_probe()

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
        """Stops polling, closes the socket and wakes every waiter with
        :class:`~afxdp_rs.errors.SocketClosedError`. Closing twice is allowed."""
        self._consumer = None
        self._closed = True
        self._stop_polling()
        self.sock.close()
        waiters = self._readers + self._writers
        self._readers, self._writers = [], []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(
                    SocketClosedError(
                        "the socket was closed while this task waited on it; open a new "
                        "AsyncXskSocket to go on"
                    )
                )

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
