"""What the commands share: privileges, the test bed, live rates, warnings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from pyroute2 import IPRoute
from rich.console import Console
from rich.live import Live
from rich.table import Table

from afxdp_rs._afxdp import XskSocket, interface_info
from afxdp_rs.errors import AfXdpError, AfXdpWarning
from afxdp_rs.testbed import VethTestbed

MODES = click.Choice(["auto", "native", "skb"])
err = Console(stderr=True, soft_wrap=True)


#: --json on the commands that print results: one JSON document on standard output.
json_option = click.option(
    "--json", "as_json", is_flag=True, help="print the results as JSON (for scripts)"
)


def show(table: Table) -> None:
    """Prints a table on standard output: drawn on a terminal, plain aligned columns
    otherwise (a pipe, a file)."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=200, no_color=True)
        table.box = None
        table.show_edge = False
    out.print(table)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def need_root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException(
            "AF_XDP sockets, XDP programs and network namespaces need root (or "
            "CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF): run with sudo"
        )


class Rates:
    """Counts packets and bytes; shows live rates on a terminal during long runs."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.packets = 0
        self.bytes = 0
        self.start = time.perf_counter()
        self._live: Live | None = None
        self._shown = 0.0

    def __enter__(self) -> Rates:
        if err.is_terminal:
            self._live = Live(self._render(), console=err, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def add(self, packets: int, nbytes: int) -> None:
        self.packets += packets
        self.bytes += nbytes
        now = time.perf_counter()
        if self._live is not None and now - self._shown > 0.25:
            self._shown = now
            self._live.update(self._render())

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def _render(self) -> Table:
        t = Table.grid(padding=(0, 2))
        secs = max(self.seconds, 1e-9)
        t.add_row(
            f"[bold]{self.what}[/]",
            f"{self.packets:,} packets",
            f"{self.bytes:,} bytes",
            f"{self.packets / secs:,.0f} pkt/s",
            f"{self.bytes * 8 / secs / 1e6:,.1f} Mbit/s",
            f"{secs:.1f} s",
        )
        return t


def interface_name(ifname: str | None, tb: VethTestbed | None) -> str:
    if tb is not None:
        return tb.inner
    assert ifname is not None
    return ifname


@contextlib.contextmanager
def bed_or_none(ifname: str | None, **kw: Any) -> Iterator[VethTestbed | None]:
    if ifname is not None:
        yield None
        return
    with VethTestbed(ephemeral=True, **kw) as tb:
        err.print(
            f"[dim]no interface given: using a veth test bed ({tb.inner} <-> {tb.peer}) in a "
            "private network namespace[/]"
        )
        yield tb


@contextlib.contextmanager
def generate(
    tb: VethTestbed, ifname: str, count: int | None, size: int = 64
) -> Iterator[list[int]]:
    """Sends `count` test frames from `ifname` (the test bed's peer) in a thread while
    the block runs (None: about 10,000 a second until the block ends); leaving the
    block stops it and waits for it (before the test bed goes away). Yields a list
    whose one item counts what was sent (final once the block is left)."""
    gen = XskSocket(ifname, 0, rx_size=0)
    stop = threading.Event()
    # A gentle generator: nothing is dropped; an endless one does not flood the disk.
    pause = 0.0005 if count is not None else 0.0064
    sent = [0]

    def run() -> None:
        stop.wait(0.2)  # let the receiver start
        while (count is None or sent[0] < count) and not stop.is_set():
            n = 64 if count is None else min(64, count - sent[0])
            first = sent[0]
            done = gen.send([tb.frame(first + i, size) for i in range(n)], timeout=5.0)
            gen.flush(timeout=5.0)
            sent[0] += done
            time.sleep(pause)

    t = threading.Thread(target=run, name="afxdp-generator")
    t.start()
    try:
        yield sent
    finally:
        stop.set()
        t.join()
        gen.close()


T = TypeVar("T")


def warned(tb: VethTestbed | None, make: Callable[[], T]) -> T:
    """Opens a socket or forwarder; on a real interface, prints each AfXdpWarning (what
    makes packets arrive unfinished or too large, and the command that fixes it) and
    what --fix-offloads changed."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", AfXdpWarning)
        made = make()
    if tb is None:
        for w in said:
            err.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    for change in getattr(made, "offload_changes", ()):
        err.print(f"[dim]{change}[/]", highlight=False)
    return made


class LinkNotices:
    """Says in one line each time an interface goes down or comes back (a long-running
    command keeps running across it), and counts how often it went down."""

    def __init__(self) -> None:
        self.down: dict[str, bool] = {}
        self.downs: dict[str, int] = {}

    def saw(self, ifname: str, down: bool) -> None:
        if down == self.down.get(ifname, False):
            return
        self.down[ifname] = down
        if down:
            self.downs[ifname] = self.downs.get(ifname, 0) + 1
            err.print(
                f"[yellow]link {ifname} is down:[/] waiting for it to come back",
                highlight=False,
            )
        else:
            err.print(f"[green]link {ifname} is up again:[/] going on", highlight=False)

    def summary(self) -> str:
        """ "; xdp0 went down 2 times" (empty when nothing went down)."""
        parts = [f"{n} went down {k} time{'s' if k > 1 else ''}" for n, k in self.downs.items()]
        return ("; " + ", ".join(parts)) if parts else ""


class Stopping:
    """Inside ``with Stopping() as stop:``, Ctrl-C and SIGTERM only set ``stop.asked``:
    the loop that checks it ends at a clean point (no half-written record, a summary
    of everything done). A second signal interrupts at once."""

    def __init__(self) -> None:
        self.asked = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> Stopping:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_rates(what: str, done: Callable[[int], bool], step: Callable[[Rates], None]) -> Rates:
    """Runs `step` until `done(packets so far)`, Ctrl-C or SIGTERM, showing live rates
    on a terminal; returns the counts."""
    with Rates(what) as rates, Stopping() as stop:
        while not stop.asked and not done(rates.packets):
            step(rates)
    return rates


def until(count: int | None, duration: float | None) -> Callable[[int], bool]:
    deadline = None if duration is None else time.monotonic() + duration

    def done(n: int) -> bool:
        if count is not None and n >= count:
            return True
        return deadline is not None and time.monotonic() >= deadline

    return done


class QueuesParam(click.ParamType):  # type: ignore[type-arg]
    """A queue number, or "all"."""

    name = "QUEUE|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value == "all":
            return value
        try:
            q = int(value)
        except ValueError:
            q = -1
        if q < 0:
            self.fail(f"{value!r} is not a queue: give a number from 0, or all", param, ctx)
        return q


def warn_unheard(name: str, queues: list[int]) -> None:
    """Warns when IFNAME has rx queues nobody listens on: their packets are not seen."""
    try:
        have = interface_info(name).get("rx_queues") or 1
    except AfXdpError:
        return  # gone meanwhile: the socket itself says so next

    if have > len(queues):
        listened = ", ".join(map(str, queues))
        err.print(
            f"[yellow]warning:[/] {name} has {have} rx queues and this listens on "
            f"{listened} only: packets the NIC puts on the others are not seen "
            "(use -q all, or steer the flow with ethtool -N)",
            highlight=False,
        )


def link_stats(ifname: str) -> dict[str, int]:
    with IPRoute() as ipr:
        links = ipr.get_links(ifname=ifname)
        stats = links[0].get_attr("IFLA_STATS64") if links else None
        return {k: int(v) for k, v in stats.items()} if stats else {}
