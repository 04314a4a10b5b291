"""What the commands share: privileges, the test bed, live rates, warnings."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from pyroute2 import IPRoute
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from afxdp_rs._afxdp import XskSocket, interface_info
from afxdp_rs.errors import AfXdpError, AfXdpWarning, ProgramDetachedError
from afxdp_rs.testbed import VethTestbed

MODES = click.Choice(["auto", "native", "skb"])
err = Console(stderr=True, soft_wrap=True)


#: --json on the commands that print results: one JSON document on standard output.
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print the results as JSON (for scripts; with intervals, JSON lines)",
)

#: --interval on long-running commands (see Intervals).
interval_option = click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="when standard output is not a terminal: a line every SECONDS (0: none)",
)

# The library's messages name Python arguments; on the command line the same advice
# is an option of the command (or, where the command has none, said as what it does).
_CLI_WORDS = [
    (re.compile(r'\bmode=\\?"(\w+)\\?"'), r"--mode \1"),
    (re.compile(r"\bmode='(\w+)'"), r"--mode \1"),
    (re.compile(r"\bfix_offloads\b(=True)?"), "--fix-offloads"),
    (
        re.compile(r"\(complete_checksums=True; a Forwarder does by default\)"),
        "(afxdp forward does by default; --no-checksums turns it off)",
    ),
    (re.compile(r"\bbusy_poll on\b"), "busy polling (-B) on"),
    (re.compile(r"\bbusy_poll\b(=True)?"), "busy polling"),
]


def cli_words(message: str) -> str:
    """`message` with the library's Python arguments put as the command line's options."""
    for pattern, repl in _CLI_WORDS:
        message = pattern.sub(repl, message)
    return message


def warn(message: str) -> None:
    """One warning line on standard error, in the command line's words."""
    err.print("[yellow]afxdp: warning:[/]", escape(cli_words(message)), highlight=False)


def pick_interface(iface: str | None, words: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """The interface (-i, or else the first argument) and the arguments after it."""
    if iface is not None:
        return iface, words
    if words:
        return words[0], words[1:]
    return None, ()


def show(table: Table) -> None:
    """Prints a table on standard output: drawn on a terminal, plain aligned columns
    otherwise (a pipe, a file)."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=200, no_color=True)
        table.box = None
        table.show_edge = False
    out.print(table)


def print_json(value: Any, *, lines: bool = False) -> None:
    """Prints one JSON document (with `lines`, on one line: the last of a stream of
    JSON lines, see :class:`Intervals`)."""
    click.echo(json.dumps(value) if lines else json.dumps(value, indent=2, sort_keys=False))


class UsageProblem(click.ClickException):
    """What was asked cannot be done with these arguments or files (exit 2)."""

    exit_code = 2


class ReaderGone(Exception):
    """The reader of standard output went away (``... | head``): the command stops and
    the process exits 0, as documented."""


def need_root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException(
            "AF_XDP sockets, XDP programs and network namespaces need root (or "
            "CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_PERFMON): run with sudo"
        )


def stack_use(ifname: str) -> list[str]:
    """What this host's network stack has on `ifname`: its addresses (link-local IPv6
    ones aside, which every interface has) and the routes through it. A socket that
    takes the interface's packets takes them from all of these."""
    found: list[str] = []
    with IPRoute() as ipr:
        links = ipr.link_lookup(ifname=ifname)
        if not links:
            return found
        index = links[0]
        addrs = [
            f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
            for a in ipr.get_addr(index=index)
            if not str(a.get_attr("IFA_ADDRESS")).startswith("fe80:")
        ]
        if addrs:
            found.append("address" + ("es " if len(addrs) > 1 else " ") + ", ".join(addrs))
        default = False
        routes = 0
        for family in (2, 10):  # AF_INET, AF_INET6
            for r in ipr.get_routes(family=family, oif=index, table=254):
                if r["dst_len"] == 0:
                    default = True
                elif not str(r.get_attr("RTA_DST")).startswith(("fe80:", "ff00:")):
                    routes += 1
        if default:
            found.append("the default route")
        if routes:
            found.append(f"{routes} other route{'s' if routes > 1 else ''}")
    return found


class Intervals:
    """When standard output is not a terminal, one line per `every` seconds of what a
    long-running command did so far (as iperf3 prints), or a JSON line each with
    `as_json`; nothing on a terminal (the live view shows it there) or with every=0."""

    def __init__(self, every: float, as_json: bool, stream_free: bool = True) -> None:
        self.every = every
        self.as_json = as_json
        self.on = every > 0 and stream_free and not sys.stdout.isatty()
        self.start = time.monotonic()
        self._next = self.start + every
        self._last: dict[str, float] = {}

    def due(self) -> bool:
        """Whether a line is due now (then :meth:`emit` it)."""
        return self.on and time.monotonic() >= self._next

    def emit(self, t: dict[str, float]) -> None:
        """Prints the line for the counts so far `t` (packets, bytes and any others)."""
        now = time.monotonic()
        self._next = now + self.every
        elapsed = now - self.start
        line: dict[str, float] = {"seconds": round(elapsed, 3)}
        for k, v in t.items():
            line[k] = v
            line[f"{k}_in_interval"] = v - self._last.get(k, 0)
        span = max(elapsed - self._last.get("seconds", 0.0), 1e-9)
        self._last = {**t, "seconds": elapsed}
        if self.as_json:
            click.echo(json.dumps({"interval": line}))
            return
        pkts = line.get("packets_in_interval", 0)
        nbytes = line.get("bytes_in_interval", 0)
        click.echo(
            f"{elapsed:7.1f} s  {t.get('packets', 0):>12,.0f} packets  "
            f"{pkts / span:>12,.0f} pkt/s  {nbytes * 8 / span / 1e6:>10,.1f} Mbit/s"
        )


class Rates:
    """Counts packets and bytes; shows live rates on a terminal during long runs."""

    def __init__(self, what: str, live: bool = True) -> None:
        self.what = what
        self.packets = 0
        self.bytes = 0
        self.start = time.perf_counter()
        self._live: Live | None = None
        self._shown = 0.0
        self._show_live = live

    def __enter__(self) -> Rates:
        if err.is_terminal and self._show_live:
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
            warn(str(w.message))
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
    of everything done), within a second. The same signal coming again (GNU timeout
    signals the process and then its group; an impatient Ctrl-C) changes nothing; only
    one more than STUCK seconds after the first interrupts at once, for a command that
    did not stop."""

    STUCK = 5.0

    def __init__(self) -> None:
        self.asked = False
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        now = time.monotonic()
        if not self.asked:
            self.asked = True
            self._first = now
        elif now - self._first > self.STUCK:
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        """Sleeps up to `seconds`, ending early when a stop is asked for."""
        end = time.monotonic() + seconds
        while not self.asked:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def __enter__(self) -> Stopping:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.asked:
            # Stopping: the same signal coming again while the command prints its
            # summary changes nothing either (main() restores the handlers at its end).
            return
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


class ProgramWatch:
    """Notices that the XDP program on an interface is no longer the one that was there
    when the command started (detached, or replaced): :meth:`check`, called a few times
    a second by a long-running command, then raises ProgramDetachedError."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.prog_id = interface_info(ifname)["xdp_prog_id"]

    def check(self) -> None:
        now = interface_info(self.ifname)["xdp_prog_id"]
        if now == self.prog_id:
            return
        what = f"replaced by program id {now}" if now else "detached"
        raise ProgramDetachedError(
            f"the XDP program (id {self.prog_id}) that steered {self.ifname}'s packets here "
            f"was {what} by someone else: no packet reaches this command any more; find "
            "out what removed it, then start the command again"
        )


def link_stats(ifname: str) -> dict[str, int]:
    with IPRoute() as ipr:
        links = ipr.get_links(ifname=ifname)
        stats = links[0].get_attr("IFLA_STATS64") if links else None
        return {k: int(v) for k, v in stats.items()} if stats else {}
