"""The ``afxdp`` command line (also ``python -m afxdp_rs``).

Every command that takes an interface also runs without one, on its own veth test bed
in a private network namespace (gone when the command exits), so each can be tried at
once: ``sudo afxdp capture -c 100 -w /tmp/x.pcap``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
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
from rich.table import Table

from afxdp_rs._afxdp import Forwarder, XskSocket, interface_info
from afxdp_rs.errors import AfXdpError, AfXdpWarning
from afxdp_rs.pcap import PcapReader, PcapWriter
from afxdp_rs.testbed import VethTestbed

MODES = click.Choice(["auto", "native", "skb"])
err = Console(stderr=True, soft_wrap=True)


def _need_root() -> None:
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


def _name(ifname: str | None, tb: VethTestbed | None) -> str:
    if tb is not None:
        return tb.inner
    assert ifname is not None
    return ifname


@contextlib.contextmanager
def _bed_or_none(ifname: str | None, **kw: Any) -> Iterator[VethTestbed | None]:
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
def _generate(tb: VethTestbed, ifname: str, count: int, size: int = 64) -> Iterator[None]:
    """Sends `count` test frames from `ifname` (the test bed's peer) in a thread while
    the block runs; leaving the block stops it and waits for it (before the test bed
    goes away)."""
    gen = XskSocket(ifname, 0, rx_size=0)
    stop = threading.Event()

    def run() -> None:
        stop.wait(0.2)  # let the receiver start
        sent = 0
        while sent < count and not stop.is_set():
            n = min(64, count - sent)
            sent += gen.send([tb.frame(sent + i, size) for i in range(n)], timeout=5.0)
            gen.flush(timeout=5.0)
            time.sleep(0.0005)  # a gentle generator: nothing is dropped

    t = threading.Thread(target=run, name="afxdp-generator")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        gen.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="afxdp_rs")
def cli() -> None:
    """AF_XDP from the command line: inspect, capture, replay, forward.

    Commands given no interface run on their own veth test bed."""


@cli.command()
@click.option("-n", "--packets", type=click.IntRange(min=1), default=300_000, show_default=True)
@click.option("-s", "--size", type=click.IntRange(18, 1514), default=64, show_default=True)
@click.option("-b", "--batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
def demo(packets: int, size: int, batch: int, mode: str) -> None:
    """Receive and send packets on a private veth test bed; print packets/s."""
    _need_root()
    from afxdp_rs import demo as demo_mod

    code = demo_mod.run(packets, size, batch, mode)
    if code:
        sys.exit(code)


@cli.command()
@click.argument("ifname", required=False)
def info(ifname: str | None) -> None:
    """Driver, queues, XDP modes and programs of IFNAME, and whether zero-copy works."""
    _need_root()
    with _bed_or_none(ifname) as tb:
        name = _name(ifname, tb)
        i = interface_info(name)

        def yes(v: object) -> str:
            return "unknown" if v is None else ("yes" if v else "no")

        prog = f"id {i['xdp_prog_id']} ({i['xdp_mode']})" if i["xdp_prog_id"] else "none"
        rows = [
            ("interface", f"{i['ifname']} (index {i['ifindex']})"),
            ("driver", i["driver"] or "unknown"),
            ("mtu", str(i["mtu"])),
            ("queues", f"{i['rx_queues']} rx, {i['tx_queues']} tx"),
            ("xdp modes", "native, skb" if i["native_xdp"] else "skb"),
            ("native xdp", yes(i["native_xdp"])),
            ("zero-copy", yes(i["zerocopy"])),
            ("xdp program", prog),
        ]
        table = Table(show_header=False, box=None)
        for k, v in rows:
            table.add_row(f"[bold]{k}[/]", v)
        Console().print(table)


T = TypeVar("T")


def _warned(tb: VethTestbed | None, make: Callable[[], T]) -> T:
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


def _run(what: str, done: Callable[[int], bool], step: Callable[[Rates], None]) -> Rates:
    """Runs `step` until `done(packets so far)` or Ctrl-C, showing live rates on a
    terminal; returns the counts."""
    with Rates(what) as rates:
        try:
            while not done(rates.packets):
                step(rates)
        except KeyboardInterrupt:
            pass
    return rates


def _until(count: int | None, duration: float | None) -> Callable[[int], bool]:
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


def _unheard(name: str, queues: list[int]) -> None:
    """Warns when IFNAME has rx queues nobody listens on: their packets are not seen."""
    have = interface_info(name).get("rx_queues") or 1
    if have > len(queues):
        listened = ", ".join(map(str, queues))
        err.print(
            f"[yellow]warning:[/] {name} has {have} rx queues and this listens on "
            f"{listened} only: packets the NIC puts on the others are not seen "
            "(use -q all, or steer the flow with ethtool -N)",
            highlight=False,
        )


@cli.command()
@click.argument("ifname", required=False)
@click.option(
    "-q",
    "--queue",
    type=QueuesParam(),
    default=0,
    show_default=True,
    help="the rx queue to capture, or all of them",
)
@click.option("-w", "--write", "path", required=True, help="pcap file to write")
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after COUNT packets")
@click.option("-d", "--duration", type=click.FloatRange(min=0), help="stop after SECONDS")
@click.option(
    "-f",
    "--filter",
    "expr",
    help='take only packets that match, in tcpdump\'s words ("udp and dst port 4789")',
)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option(
    "--fix-offloads",
    is_flag=True,
    help="turn off the offloads that make packets arrive unfinished or too large",
)
def capture(
    ifname: str | None,
    queue: int | str,
    path: str,
    count: int | None,
    duration: float | None,
    expr: str | None,
    mode: str,
    fix_offloads: bool,
) -> None:
    """Capture packets of one queue of IFNAME (or all, -q all) into a pcap file, each
    with the time it reached XDP.

    The packets are taken from the kernel stack on that queue while capturing (AF_XDP
    redirects them to the socket): with --filter, only those that match; the others go
    on to the stack. Ctrl-C stops and keeps what was captured."""
    _need_root()
    if ifname is None and count is None and duration is None:
        count = 1000
    with _bed_or_none(ifname) as tb:
        name = _name(ifname, tb)
        queues = (
            list(range(interface_info(name).get("rx_queues") or 1))
            if queue == "all"
            else [int(queue)]
        )
        options: dict[str, Any] = {
            "mode": mode,
            "fix_offloads": fix_offloads,
            "match": expr,
            "timestamps": True,
        }
        with contextlib.ExitStack() as stack:
            socks = [
                stack.enter_context(_warned(tb, functools.partial(XskSocket, name, q, **options)))
                for q in queues
            ]
            if tb is None:
                _unheard(name, queues)
            pcap = stack.enter_context(PcapWriter(path))
            if tb is not None:
                stack.enter_context(_generate(tb, tb.peer, count or 1000))
            sel = stack.enter_context(selectors.DefaultSelector())
            for sock in socks:
                sel.register(sock.fileno(), selectors.EVENT_READ, sock)

            def take(rates: Rates) -> None:
                took = 0
                for sock in socks:
                    want = 256 if count is None else min(256, count - pcap.packets)
                    if want <= 0:
                        return
                    with sock.recv(want, timeout=0) as batch:
                        for frame in batch:
                            pcap.write(frame, frame.timestamp)
                        rates.add(len(batch), sum(batch.lengths()))
                        took += len(batch)
                if not took:
                    sel.select(timeout=0.2)

            where = f"{name}:{queue}" + (f" ({expr})" if expr else "")
            _run(f"capture {where}", _until(count, duration), take)
            stats = [s.statistics() for s in socks]
    lost = sum(st["rx_dropped"] + st["rx_ring_full"] for st in stats)
    click.echo(
        f"captured {pcap.packets} packets ({pcap.bytes} bytes) to {path}"
        + (f"; the kernel dropped {lost} (rx_dropped + rx_ring_full)" if lost else "")
    )


@cli.command(name="send")
@click.argument("ifname", required=False)
@click.option("--from", "source", required=True, help="pcap file to replay")
@click.option("-r", "--rate", type=click.FloatRange(min=0, min_open=True), help="packets/s")
@click.option("-l", "--loop", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
def send_cmd(ifname: str | None, source: str, rate: float | None, loop: int, queue: int) -> None:
    """Replay the frames of a pcap file on IFNAME, LOOP times, at RATE packets/s."""
    _need_root()
    frames = PcapReader(source).frames()
    if not frames:
        raise click.ClickException(f"{source} holds no packets")
    total = len(frames) * loop
    with _bed_or_none(ifname) as tb:
        name = _name(ifname, tb)
        before = tb.link_stats(tb.peer) if tb is not None else {}
        with XskSocket(name, queue, rx_size=0) as sock:
            batch = 64 if rate is None else max(1, min(64, int(rate / 100)))
            with Rates(f"send {name}:{queue}") as rates:
                sent = 0
                try:
                    for _ in range(loop):
                        for i in range(0, len(frames), batch):
                            chunk = frames[i : i + batch]
                            n = sock.send(chunk, timeout=5.0)
                            sent += n
                            rates.add(n, sum(len(f) for f in chunk[:n]))
                            if rate is not None:
                                ahead = sent / rate - rates.seconds
                                if ahead > 0:
                                    time.sleep(ahead)
                except KeyboardInterrupt:
                    pass
                sock.flush(timeout=5.0)
            stats = sock.statistics()
        msg = f"sent {stats['tx_completed']} of {total} packets from {source} on {name}"
        if tb is not None:
            arrived = tb.link_stats(tb.peer)["rx_packets"] - before.get("rx_packets", 0)
            msg += f"; {tb.peer} received {arrived}"
    click.echo(msg)


def _link_stats(ifname: str) -> dict[str, int]:
    with IPRoute() as ipr:
        links = ipr.get_links(ifname=ifname)
        stats = links[0].get_attr("IFLA_STATS64") if links else None
        return {k: int(v) for k, v in stats.items()} if stats else {}


def _directions(fwd: Forwarder, tx0: dict[str, int]) -> list[dict[str, Any]]:
    """Each direction summed over the queue pairs, with what was lost on the way and
    the counter that holds it."""
    out: dict[str, dict[str, Any]] = {}
    for d in fwd.statistics():
        row = out.setdefault(
            d["from"],
            {
                "from": d["from"],
                "to": d["to"],
                "packets": 0,
                "bytes": 0,
                "checksums": 0,
                "rx_dropped": 0,
                "rx_ring_full": 0,
            },
        )
        for k in ("packets", "bytes", "checksums"):
            row[k] += d[k]
        for k in ("rx_dropped", "rx_ring_full"):
            row[k] += d["rx"][k]
    for row in out.values():
        row["tx_dropped"] = _link_stats(row["to"]).get("tx_dropped", 0) - tx0[row["to"]]
    return list(out.values())


def _forward_table(rows: list[dict[str, Any]], seconds: float) -> Table:
    t = Table.grid(padding=(0, 2))
    for r in rows:
        secs = max(seconds, 1e-9)
        lost = r["rx_dropped"] + r["rx_ring_full"] + r["tx_dropped"]
        t.add_row(
            f"[bold]{r['from']} -> {r['to']}[/]",
            f"{r['packets']:,} packets",
            f"{r['packets'] / secs:,.0f} pkt/s",
            f"{r['bytes'] * 8 / secs / 1e6:,.1f} Mbit/s",
            f"lost {lost:,}",
            f"{secs:.1f} s",
        )
    return t


@cli.command()
@click.argument("if_a", required=False)
@click.argument("if_b", required=False)
@click.option(
    "--queues",
    type=QueuesParam(),
    default=1,
    show_default=True,
    help="forward queues START..START+N-1 (all: every queue), a thread each",
)
@click.option("--start-queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after COUNT packets")
@click.option("-d", "--duration", type=click.FloatRange(min=0), help="stop after SECONDS")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option(
    "--bind", type=click.Choice(["auto", "copy", "zerocopy"]), default="auto", show_default=True
)
@click.option(
    "--no-checksums",
    is_flag=True,
    help="leave partial checksums (from senders that offload them) unfinished",
)
@click.option(
    "--fix-offloads",
    is_flag=True,
    help="turn off the offloads that make packets arrive unfinished or too large",
)
def forward(
    if_a: str | None,
    if_b: str | None,
    queues: int | str,
    start_queue: int,
    count: int | None,
    duration: float | None,
    mode: str,
    bind: str,
    no_checksums: bool,
    fix_offloads: bool,
) -> None:
    """Forward every frame between IF_A and IF_B, both ways, without copying it (one
    UMEM per queue pair, a Rust thread each), completing partial checksums on the way.
    Shows per direction what was forwarded and what was lost, with the kernel counter
    that holds each loss. Ctrl-C stops and prints the summary."""
    _need_root()
    if (if_a is None) != (if_b is None):
        raise click.UsageError("give both interfaces, or none for the test bed")
    if if_a is None and count is None and duration is None:
        count = 1000
    with _bed_or_none(if_a) as tb, contextlib.ExitStack() as stack:
        if tb is not None:
            tb.add_veth("fwd0", "fwd1")
            a_name, b_name = tb.inner, "fwd0"
            before = _link_stats("fwd1").get("rx_packets", 0)
        else:
            assert if_a is not None and if_b is not None
            a_name, b_name = if_a, if_b
        if queues == "all":
            queues = min(interface_info(n).get("rx_queues") or 1 for n in (a_name, b_name))
        pairs = int(queues)
        if pairs < 1:
            raise click.BadParameter("forward at least one queue", param_hint="--queues")
        if tb is None:
            for n in (a_name, b_name):
                _unheard(n, list(range(start_queue, start_queue + pairs)))
        fwd = _warned(
            tb,
            functools.partial(
                Forwarder,
                a_name,
                b_name,
                queues=pairs,
                start_queue=start_queue,
                mode=mode,
                bind=bind,
                complete_checksums=not no_checksums,
                fix_offloads=fix_offloads,
            ),
        )
        stack.callback(fwd.stop)
        tx0 = {n: _link_stats(n).get("tx_dropped", 0) for n in (a_name, b_name)}
        if tb is not None:
            stack.enter_context(_generate(tb, tb.peer, count or 1000))
        done = _until(count, duration)
        start = time.perf_counter()
        rows = _directions(fwd, tx0)
        live = (
            stack.enter_context(Live(_forward_table(rows, 0.0), console=err, refresh_per_second=4))
            if err.is_terminal
            else None
        )
        try:
            while not done(sum(r["packets"] for r in rows)):
                if fwd.wait(0.1):
                    break  # a queue pair ended: stop() below says why
                rows = _directions(fwd, tx0)
                if live is not None:
                    live.update(_forward_table(rows, time.perf_counter() - start))
        except KeyboardInterrupt:
            pass
        rows = _directions(fwd, tx0)
        seconds = time.perf_counter() - start
        fwd.stop()  # raises what ended a queue pair, if anything did
        if live is not None:
            live.update(_forward_table(rows, seconds))
            live.stop()
        total = sum(r["packets"] for r in rows)
        lines = [f"forwarded {total} packets between {a_name} and {b_name} in {seconds:.1f} s"]
        for r in rows:
            lost = r["rx_dropped"] + r["rx_ring_full"] + r["tx_dropped"]
            line = (
                f"{r['from']} -> {r['to']}: {r['packets']:,} packets ({r['bytes']:,} bytes), "
                f"{r['checksums']:,} partial checksums completed; lost {lost:,}"
            )
            if lost:
                line += (
                    f" (rx_dropped {r['rx_dropped']:,} and rx_ring_full {r['rx_ring_full']:,}"
                    f" of the AF_XDP socket on {r['from']}, tx_dropped {r['tx_dropped']:,}"
                    f" of {r['to']})"
                )
            lines.append(line)
        if tb is not None:
            time.sleep(0.05)
            arrived = _link_stats("fwd1").get("rx_packets", 0) - before
            lines[0] += f"; fwd1 received {arrived}"
    click.echo("\n".join(lines))


def _mac_of(ifname: str) -> bytes:
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError:
        return bytes.fromhex("020000000099")


@cli.command()
@click.argument("ifname", required=False)
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-c", "--count", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("-s", "--size", type=click.IntRange(50, 1514), default=64, show_default=True)
@click.option(
    "-w",
    "--window",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="at most this many packets in flight (0: as fast as possible)",
)
@click.option("--dst", default="ff:ff:ff:ff:ff:ff", help="destination MAC (with IFNAME)")
@click.option("--no-swap", is_flag=True, help="the far side returns frames unchanged")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
def verify(
    ifname: str | None,
    queue: int,
    count: int,
    size: int,
    window: int,
    dst: str,
    no_swap: bool,
    mode: str,
) -> None:
    """Sends COUNT numbered packets out of IFNAME and checks every one that comes back
    from a forwarder on the far side (which swaps the MAC addresses, as an L2 forwarder
    does, unless --no-swap): each byte, and that numbers only go up (no reordering, no
    duplicates). Without IFNAME: on its own veth test bed, through an l2fwd loop on the
    peer, and every loss is matched against the kernel's drop counters. Exits with 1 on
    a reordered or changed packet, or a loss nothing counted."""
    _need_root()
    with _bed_or_none(ifname) as tb:
        if tb is not None:
            name = tb.inner
            template = tb.frame(0, size, to_inner=False)
            links0 = {n: tb.link_stats(n) for n in (tb.inner, tb.peer)}
        else:
            assert ifname is not None
            name = ifname
            try:
                mac = bytes.fromhex(dst.replace(":", ""))
            except ValueError:
                mac = b""
            if len(mac) != 6:
                raise click.BadParameter(f"{dst!r} is not a MAC address", param_hint="--dst")
            head = mac + _mac_of(ifname) + b"\x88\xb5"
            template = head + bytes(size - len(head))
        with contextlib.ExitStack() as stack:
            fwd: XskSocket | None = None
            fwd_thread: threading.Thread | None = None
            if tb is not None:
                fwd = stack.enter_context(XskSocket(tb.peer, queue, mode=mode))
                fwd_thread = threading.Thread(target=fwd.rust_l2fwd, args=(3600.0,))
                fwd_thread.start()
                stack.callback(fwd_thread.join)
                stack.callback(fwd.stop_loop)
            sock = stack.enter_context(_warned(tb, lambda: XskSocket(name, queue, mode=mode)))
            err.print(f"[dim]sending {count:,} numbered packets of {size} bytes out of {name}[/]")
            r = sock.sequence_check(template, count, window=window, swapped=not no_swap)
            stats = sock.statistics()
            # Drops the kernel counted (a socket's drops also show in its interface's
            # rx_dropped, which is therefore not added).
            counted = stats["rx_dropped"] + stats["rx_ring_full"]
            if tb is not None and fwd is not None and fwd_thread is not None:
                fwd.stop_loop()
                fwd_thread.join()
                fstats = fwd.statistics()
                counted += fstats["rx_dropped"] + fstats["rx_ring_full"]
                for n in (tb.inner, tb.peer):
                    counted += tb.link_stats(n)["tx_dropped"] - links0[n]["tx_dropped"]
    table = Table(title=f"verify {name}:{queue}")
    for col in ("sent", "received", "missing", "out of order", "corrupted", "Mpps"):
        table.add_column(col, justify="right")
    mpps = r["received"] / r["seconds"] / 1e6 if r["seconds"] else 0.0
    table.add_row(
        *(f"{int(r[k]):,}" for k in ("sent", "received", "missing", "out_of_order", "corrupted")),
        f"{mpps:.3f}",
    )
    Console().print(table)
    bad = int(r["out_of_order"] + r["corrupted"])
    if tb is not None:
        unexplained = int(r["missing"]) - counted
        click.echo(
            f"lost {int(r['missing']):,}; the kernel counted {counted:,} drops "
            f"(AF_XDP rx_dropped + rx_ring_full on both sockets, veth tx_dropped); "
            f"unexplained: {unexplained:,}"
        )
        bad += abs(unexplained)
    else:
        click.echo(
            f"lost {int(r['missing']):,}; this socket's kernel counters show {counted:,} "
            "drops (rx_dropped + rx_ring_full); the rest was lost on the way"
        )
    if bad:
        raise SystemExit(1)


@cli.command()
@click.argument("workload", type=click.Choice(["rxdrop", "txonly", "l2fwd", "forward", "tcp"]))
@click.option("-i", "--interface", "ifname", help="interface (default: own veth test bed)")
@click.option("--peer", help="interface the generator sends from (rxdrop, l2fwd)")
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-N", "--native", "mode", flag_value="native", help="native XDP mode")
@click.option("-S", "--skb", "mode", flag_value="skb", help="skb (generic) XDP mode")
@click.option("-c", "--copy", "bind", flag_value="copy", help="force copy mode")
@click.option("-z", "--zero-copy", "bind", flag_value="zerocopy", help="force zero-copy")
@click.option("-b", "--batch", type=click.IntRange(1, 2048), default=64, show_default=True)
@click.option("-f", "--frame-size", type=click.Choice(["2048", "4096"]), default="4096")
@click.option(
    "-s",
    "--size",
    type=click.IntRange(18, 9014),
    default=64,
    show_default=True,
    help="packet size; above 1514 the test bed gets a jumbo MTU (multi-buffer)",
)
@click.option("-d", "--duration", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True)
@click.option("-p", "--poll", is_flag=True, help="wait in poll(2) instead of spinning")
@click.option(
    "--linger-us",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="after a batch that was not full, wait this long for more (all paths)",
)
@click.option("--compare", is_flag=True, help="also run the Rust loop and AF_PACKET")
@click.option(
    "--queues",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="rxdrop on this many queues at once (test bed only)",
)
def bench(
    workload: str,
    ifname: str | None,
    peer: str | None,
    queue: int,
    mode: str | None,
    bind: str | None,
    batch: int,
    frame_size: str,
    size: int,
    duration: float,
    poll: bool,
    linger_us: int,
    compare: bool,
    queues: int,
) -> None:
    """Measure rxdrop, txonly, l2fwd, forward (both ways between two interfaces) or tcp
    (iperf3 between two stacks through the forwarder): packets/s, loss and CPU time
    per packet."""
    _need_root()
    from afxdp_rs.bench import PATHS, Options, Result, run

    opts = Options(
        workload=workload,
        ifname=ifname,
        peer=peer,
        queue=queue,
        mode=mode or "auto",
        bind=bind or "auto",
        batch=batch,
        frame_size=int(frame_size),
        size=size,
        duration=duration,
        poll=poll,
        linger=linger_us / 1e6,
        queues=queues,
        paths=PATHS if compare else ("python",),
    )
    table = Table(
        title=f"{workload}, {size}-byte packets, batch {batch}, "
        f"{'poll' if poll else 'busy-poll'} mode"
        + (f", linger {linger_us} us" if linger_us else "")
    )
    for col in ("path", "Mpps", "Gbit/s", "offered", "arrived", "lost", "cpu ns/pkt", "kernel"):
        table.add_column(col, justify="right")

    def report(r: Result) -> None:
        err.print(f"[dim]{r.path}: {r.pps / 1e6:.3f} Mpps[/]")

    for r in run(opts, report):
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items() if v) or "-"
        table.add_row(
            r.path,
            f"{r.pps / 1e6:.3f}",
            f"{r.pps * size * 8 / 1e9:.2f}",
            f"{r.offered:,}",
            f"{r.arrived:,}",
            f"{r.lost:,}",
            f"{r.cpu_ns_per_packet:,.0f}",
            detail,
        )
    Console(width=120).print(table)


@cli.command()
@click.argument("ifname")
@click.option("--socket", "path", required=True, help="Unix socket path to serve on")
@click.option("-q", "--queues", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--start-queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option("--timeout", type=float, help="seconds to wait for the worker")
def helper(
    ifname: str, path: str, queues: int, start_queue: int, mode: str, timeout: float | None
) -> None:
    """Privileged helper: attach the XDP program, create the sockets and hand them to
    an unprivileged worker over a Unix socket."""
    _need_root()
    from afxdp_rs import privileged

    privileged.serve(path, ifname, queues, start_queue, mode, timeout=timeout)
    click.echo(f"handed {queues} socket(s) of {ifname} over on {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``afxdp`` and ``python -m afxdp_rs``."""
    try:
        cli.main(args=argv, prog_name="afxdp", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except AfXdpError as e:
        err.print(f"[red]afxdp: {type(e).__name__}:[/] {e}", highlight=False)
        return 1
    return 0
