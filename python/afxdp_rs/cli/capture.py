"""``afxdp capture``: packets of a queue (or all) to a pcap or pcapng file, to a pipe,
or as one line each on standard output, as tcpdump does; ``-r`` reads a file."""

from __future__ import annotations

import contextlib
import functools
import selectors
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from afxdp_rs._afxdp import XskSocket, interface_info
from afxdp_rs.cli.common import (
    MODES,
    Intervals,
    LinkNotices,
    QueuesParam,
    Rates,
    Stopping,
    UsageProblem,
    bed_or_none,
    err,
    generate,
    interface_name,
    interval_option,
    json_option,
    need_root,
    pick_interface,
    print_json,
    stack_use,
    until,
    warn_unheard,
    warned,
)
from afxdp_rs.decode import summary
from afxdp_rs.pcap import CaptureFileFull, Format, PcapReader, PcapWriter
from afxdp_rs.types import XdpMode


class Output:
    """Where captured packets go: a capture file (rotated by size -C or time -G, at
    most -W of them), standard output as pcap (-w -), or one line per packet."""

    def __init__(
        self,
        path: str | None,
        fmt: Format | None,
        snaplen: int,
        flush_each: bool,
        link: bool,
        size_mb: float | None,
        seconds: float | None,
        files: int | None,
    ) -> None:
        self.path = path
        self.fmt: Format = fmt or ("pcapng" if path and path.endswith(".pcapng") else "pcap")
        self.snaplen = snaplen
        self.link = link
        self.to_pipe = path == "-"
        # tcpdump's -U: every packet is handed on at once; on a pipe, every batch is.
        self.flush_each = flush_each
        self.size_limit = None if size_mb is None else int(size_mb * 1_000_000)
        self.seconds = seconds
        self.files = files
        self.packets = 0
        self.bytes = 0
        self.names: list[str] = []
        self._writer: PcapWriter | None = None
        self._opened = 0.0
        self._count = 0
        if path is not None:
            self._open_next()

    def _name(self) -> str:
        assert self.path is not None
        if self.path == "-":
            return self.path
        name = time.strftime(self.path) if self.seconds is not None else self.path
        if self.size_limit is not None:
            # tcpdump's names: path, path1, path2, ... (numbered in a ring with -W).
            n = self._count % self.files if self.files else self._count
            width = len(str(self.files - 1)) if self.files else 0
            name += f"{n:0{width}d}" if n or width else ""
        return name

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        name = self._name()
        self._writer = PcapWriter(name, self.snaplen, self.fmt)
        self.names.append(name)
        self._count += 1
        self._opened = time.monotonic()

    def done(self) -> bool:
        """With -G and -W: the last file has had its time."""
        return (
            self.seconds is not None
            and self.files is not None
            and self.size_limit is None
            and self._count >= self.files
            and time.monotonic() - self._opened >= self.seconds
        )

    def write(self, frame: Any, ts: float) -> None:
        self.packets += 1
        self.bytes += len(frame)
        if self._writer is None:
            click.echo(summary(bytes(frame), ts, link=self.link))
            return
        w = self._writer
        if (self.size_limit is not None and w.size >= self.size_limit and w.packets) or (
            self.seconds is not None
            and time.monotonic() - self._opened >= self.seconds
            and not self.done()
        ):
            self._open_next()
            w = self._writer
        w.write(frame, ts)
        if self.flush_each:
            w.flush()

    def batch_done(self) -> None:
        if self._writer is not None and self.to_pipe:
            self._writer.flush()  # the reader of the pipe sees packets as they come
        elif self._writer is None:
            sys.stdout.flush()

    def idle(self) -> None:
        """Quiet: what was captured is on disk for readers of the file."""
        if self._writer is not None:
            self._writer.flush()
            if self.seconds is not None and time.monotonic() - self._opened >= self.seconds:
                if not self.done():
                    self._open_next()
        else:
            sys.stdout.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def where(self) -> str:
        if self._writer is None:
            return "standard output (one line each)"
        if self.to_pipe:
            return "standard output"
        if len(self.names) == 1:
            return self.names[0]
        return f"{len(self.names)} files ({self.names[0]} ... {self.names[-1]})"


def _filter_of(expr: str | None, words: tuple[str, ...]) -> str | None:
    if expr and words:
        raise click.UsageError(
            f"a filter twice: -f {expr!r} and {' '.join(words)!r}: give one of them"
        )
    return expr or (" ".join(words) if words else None)


def _check_takeover(name: str, expr: str | None, take_all: bool) -> None:
    """On an interface this host's stack uses, taking every packet of a queue cuts the
    host off (a remote session on it included): refuse that without --take-all, and
    say what a capture takes in any case."""
    used = stack_use(name)
    if not used:
        return
    held = " and ".join(used)
    if expr is None and not take_all:
        raise UsageProblem(
            f"{name} has {held}: a capture takes every packet of the queue away from "
            "this host's stack while it runs (ping, SSH and everything else on "
            f"{name} stop), unlike tcpdump, which copies. Give a filter to take only "
            f"what matches (afxdp capture {name} udp port 4789), or --take-all to take "
            "everything anyway"
        )
    if expr is None:
        err.print(
            f"[yellow]afxdp: warning:[/] --take-all: {name} has {held}; every packet of "
            "the captured queues goes to this capture, not to the host, until it ends",
            highlight=False,
        )
    else:
        err.print(
            f"[dim]afxdp: packets matching {expr!r} are taken from {name}'s stack "
            "while capturing; the others go on to it[/]",
            highlight=False,
        )


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1)
@click.option("-i", "--interface", "iface", help="the interface (else the first argument)")
@click.option(
    "-q",
    "--queue",
    type=QueuesParam(),
    default=0,
    show_default=True,
    help="the rx queue to capture, or all of them",
)
@click.option("-w", "--write", "path", help="capture file to write (-: standard output)")
@click.option("-r", "--read", "read", help="print (or with -w, convert) a capture file (-: stdin)")
@click.option(
    "-F",
    "--format",
    "fmt",
    type=click.Choice(["pcap", "pcapng"]),
    help="the file format (default: pcapng for a .pcapng name, pcap otherwise)",
)
@click.option(
    "-U",
    "--packet-buffered",
    is_flag=True,
    help="hand every packet to the file or pipe at once (default: every batch on a pipe)",
)
@click.option(
    "-C",
    "size_mb",
    type=click.FloatRange(min=0, min_open=True),
    help="start a new file after MB million bytes",
)
@click.option(
    "-G",
    "rotate",
    type=click.FloatRange(min=0, min_open=True),
    help="start a new file every SECONDS (strftime in the name)",
)
@click.option(
    "-W",
    "files",
    type=click.IntRange(min=1),
    help="with -C: a ring of COUNT files; with -G: stop after COUNT files",
)
@click.option(
    "-s",
    "--snaplen",
    type=click.IntRange(1, 262144),
    default=65535,
    show_default=True,
    help="keep at most this many bytes of each packet",
)
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after COUNT packets")
@click.option("-d", "--duration", type=click.FloatRange(min=0), help="stop after SECONDS")
@click.option(
    "-f",
    "--filter",
    "expr",
    help='take only packets that match, in tcpdump\'s words ("udp and dst port 4789")',
)
@click.option(
    "--take-all",
    is_flag=True,
    help="take every packet of the queue even where this host's stack uses the interface",
)
@click.option("-e", "link", is_flag=True, help="packet lines show the Ethernet header")
@click.option("-n", "numeric", is_flag=True, help="accepted as tcpdump's: names are never resolved")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option(
    "--fix-offloads",
    is_flag=True,
    help="turn off the offloads that make packets arrive unfinished or too large",
)
@interval_option
@json_option
def capture(
    words: tuple[str, ...],
    iface: str | None,
    queue: int | str,
    path: str | None,
    read: str | None,
    fmt: Format | None,
    packet_buffered: bool,
    size_mb: float | None,
    rotate: float | None,
    files: int | None,
    snaplen: int,
    count: int | None,
    duration: float | None,
    expr: str | None,
    take_all: bool,
    link: bool,
    numeric: bool,
    mode: XdpMode,
    fix_offloads: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Capture packets of one queue of IFNAME (or all, -q all) into a capture file, each
    with the time it reached XDP, or print one line per packet (without -w). A filter
    in tcpdump's words may follow: afxdp capture eth0 udp port 53 (or -i eth0 udp port
    53, or -f "udp port 53").

    Unlike tcpdump, a capture takes the packets it captures away from the kernel stack
    (AF_XDP redirects them to the socket): with a filter only those that match, the
    others go on to the stack. On an interface the host uses (addresses, routes) a
    capture without a filter is refused unless --take-all says so. Ctrl-C or SIGTERM
    stops and keeps what was captured (a file ends on a whole packet). -w - streams
    pcap to standard output: afxdp capture eth0 -w - | tcpdump -r -"""
    if read is not None:
        _read_file(read, path, fmt, snaplen, count, link, _filter_of(expr, words), iface)
        return
    need_root()
    ifname, words = pick_interface(iface, words)
    expr = _filter_of(expr, words)
    if ifname is None and count is None and duration is None:
        count = 1000
    to_stdout = path == "-"
    if (to_stdout or path is None) and as_json:
        raise click.UsageError(
            "--json prints to standard output, where the packets go too: give -w FILE"
        )
    if to_stdout and sys.stdout.isatty():
        raise click.UsageError(
            "-w - writes binary pcap: send it to a program or a file "
            "(afxdp capture IF -w - | tcpdump -r -), not to the terminal"
        )
    if (size_mb or rotate or files) and (path is None or to_stdout):
        raise click.UsageError("-C, -G and -W rotate capture files: give -w FILE")
    if files and not (size_mb or rotate):
        raise click.UsageError("-W COUNT limits the files of -C or -G: give one of them")
    # The file first: a path that cannot be written fails before anything is set up.
    out = Output(path, fmt, snaplen, packet_buffered, link, size_mb, rotate, files)
    summary_to = sys.stderr if path in (None, "-") else sys.stdout
    try:
        with bed_or_none(ifname) as tb:
            name = interface_name(ifname, tb)
            if tb is None:
                _check_takeover(name, expr, take_all)
            result = _capture(
                out, tb, name, queue, expr, mode, fix_offloads, count, duration, interval, as_json
            )
    except CaptureFileFull as e:
        out.packets = e.packets
        raise click.ClickException(
            f"{e.filename}: no space left on the device: stopped; the file holds "
            f"{e.packets} whole packets"
        ) from None
    finally:
        with contextlib.suppress(CaptureFileFull):
            out.close()
    lost, seconds, links = result
    secs = max(seconds, 1e-9)
    if as_json:
        print_json(
            {
                "path": path,
                "files": out.names,
                "packets": out.packets,
                "bytes": out.bytes,
                "seconds": seconds,
                "packets_per_second": out.packets / secs,
                "kernel_dropped": lost,
                "link_downs": sum(links.downs.values()),
            },
            lines=True,
        )
        return
    click.echo(
        f"captured {out.packets} packets ({out.bytes} bytes) to {out.where()} in "
        f"{seconds:.1f} s ({out.packets / secs:,.0f} pkt/s)"
        + (f"; the kernel dropped {lost} (rx_dropped + rx_ring_full)" if lost else "")
        + links.summary(),
        file=summary_to,
    )


def _capture(
    out: Output,
    tb: Any,
    name: str,
    queue: int | str,
    expr: str | None,
    mode: XdpMode,
    fix_offloads: bool,
    count: int | None,
    duration: float | None,
    interval: float,
    as_json: bool,
) -> tuple[int, float, LinkNotices]:
    have = interface_info(name).get("rx_queues") or 1
    queues = list(range(have)) if queue == "all" else [int(queue)]
    options: dict[str, Any] = {
        "mode": mode,
        "fix_offloads": fix_offloads,
        "match": expr,
        "timestamps": True,
    }
    links = LinkNotices()
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(warned(tb, functools.partial(XskSocket, name, q, **options)))
            for q in queues
        ]
        if tb is None:
            warn_unheard(name, queues)
        if tb is not None:
            stack.enter_context(generate(tb, tb.peer, count))
        sel = stack.enter_context(selectors.DefaultSelector())
        for sock in socks:
            sel.register(sock.fileno(), selectors.EVENT_READ, sock)
        ticks = Intervals(interval, as_json, stream_free=out.path not in (None, "-"))

        def take(rates: Rates) -> None:
            took = 0
            for sock in socks:
                want = 256 if count is None else min(256, count - out.packets)
                if want <= 0:
                    return
                with sock.recv(want, timeout=0) as batch:
                    for frame in batch:
                        out.write(frame, frame.timestamp or time.time())
                    rates.add(len(batch), sum(batch.lengths()))
                    took += len(batch)
            if took:
                out.batch_done()
            else:
                out.idle()
                sel.select(timeout=0.2)
                for sock in socks:
                    # Detached or replaced program, removed interface: raises. A link
                    # that is down is a state: capturing goes on.
                    sock.wait_readable(timeout=0)
                    links.saw(name, not sock.link_up)
            if ticks.due():
                ticks.emit({"packets": rates.packets, "bytes": rates.bytes})

        where = f"{name}:{queue}" + (f" ({expr})" if expr else "")
        done = until(count, duration)
        rates = _run(
            f"capture {where}", lambda n: done(n) or out.done(), take, live=out.path is not None
        )
        stats = [s.statistics() for s in socks]
    lost = sum(st["rx_dropped"] + st["rx_ring_full"] for st in stats)
    return lost, rates.seconds, links


def _run(
    what: str, done: Callable[[int], bool], step: Callable[[Rates], None], live: bool
) -> Rates:
    """Runs `step` until `done(packets so far)`, Ctrl-C or SIGTERM; live rates on a
    terminal unless packet lines use it."""
    with Rates(what, live=live) as rates, Stopping() as stop:
        while not stop.asked and not done(rates.packets):
            step(rates)
    return rates


def _read_file(
    source: str,
    path: str | None,
    fmt: Format | None,
    snaplen: int,
    count: int | None,
    link: bool,
    expr: str | None,
    iface: str | None,
) -> None:
    """-r: prints a capture file's packets (tcpdump -r), or with -w writes them into
    another file (pcap <-> pcapng)."""
    if expr is not None or iface is not None:
        raise click.UsageError(
            "-r reads a file: a filter or an interface select packets in the kernel while "
            "capturing (to filter a file: tcpdump -r FILE -w - EXPR)"
        )
    records = PcapReader(source).records()
    out = Output(path, fmt, snaplen, False, link, None, None, None)
    try:
        with Stopping() as stop:
            for ts, frame in records:
                if stop.asked or (count is not None and out.packets >= count):
                    break
                out.write(frame, ts)
    finally:
        out.close()
    if path is not None:
        click.echo(f"wrote {out.packets} packets to {out.where()}", err=path == "-")
