"""``afxdp capture`` and ``afxdp send``: pcap files in and out."""

from __future__ import annotations

import contextlib
import functools
import selectors
import sys
import time
from typing import Any

import click

from afxdp_rs._afxdp import XskSocket, interface_info
from afxdp_rs.cli.common import (
    MODES,
    LinkNotices,
    QueuesParam,
    Rates,
    Stopping,
    bed_or_none,
    generate,
    interface_name,
    json_option,
    need_root,
    print_json,
    run_rates,
    until,
    warn_unheard,
    warned,
)
from afxdp_rs.errors import LinkDownError
from afxdp_rs.pcap import PcapReader, PcapWriter
from afxdp_rs.types import XdpMode


@click.command()
@click.argument("ifname", required=False)
@click.option(
    "-q",
    "--queue",
    type=QueuesParam(),
    default=0,
    show_default=True,
    help="the rx queue to capture, or all of them",
)
@click.option(
    "-w", "--write", "path", required=True, help="pcap file to write (-: standard output)"
)
@click.option(
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
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option(
    "--fix-offloads",
    is_flag=True,
    help="turn off the offloads that make packets arrive unfinished or too large",
)
@json_option
def capture(
    ifname: str | None,
    queue: int | str,
    path: str,
    snaplen: int,
    count: int | None,
    duration: float | None,
    expr: str | None,
    mode: XdpMode,
    fix_offloads: bool,
    as_json: bool,
) -> None:
    """Capture packets of one queue of IFNAME (or all, -q all) into a pcap file, each
    with the time it reached XDP.

    The packets are taken from the kernel stack on that queue while capturing (AF_XDP
    redirects them to the socket): with --filter, only those that match; the others go
    on to the stack. Ctrl-C or SIGTERM stops and keeps what was captured (the file
    ends on a whole packet). -w - streams the pcap to standard output:
    afxdp capture eth0 -w - | tcpdump -r -"""
    need_root()
    if ifname is None and count is None and duration is None:
        count = 1000
    to_stdout = path == "-"
    if to_stdout and as_json:
        raise click.UsageError("-w - and --json both write to standard output: choose one")
    if to_stdout and sys.stdout.isatty():
        raise click.UsageError(
            "-w - writes binary pcap: send it to a program or a file "
            "(afxdp capture IF -w - | tcpdump -r -), not to the terminal"
        )
    # The file first: a path that cannot be written fails before anything is set up.
    with PcapWriter(path, snaplen) as pcap, bed_or_none(ifname) as tb:
        name = interface_name(ifname, tb)
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
                if took and to_stdout:
                    pcap.flush()  # the reader of the pipe sees packets as they come
                if not took:
                    # Quiet: what was captured is on disk for readers of the file, and
                    # is the link down? (A state: capturing goes on.)
                    pcap.flush()
                    sel.select(timeout=0.2)
                    for sock in socks:
                        links.saw(name, not sock.link_up)

            links = LinkNotices()
            where = f"{name}:{queue}" + (f" ({expr})" if expr else "")
            rates = run_rates(f"capture {where}", until(count, duration), take)
            stats = [s.statistics() for s in socks]
    lost = sum(st["rx_dropped"] + st["rx_ring_full"] for st in stats)
    secs = max(rates.seconds, 1e-9)
    if as_json:
        print_json(
            {
                "path": path,
                "packets": pcap.packets,
                "bytes": pcap.bytes,
                "seconds": rates.seconds,
                "packets_per_second": pcap.packets / secs,
                "kernel_dropped": lost,
                "link_downs": sum(links.downs.values()),
            }
        )
        return
    # With the pcap on standard output, the summary goes to standard error.
    click.echo(
        f"captured {pcap.packets} packets ({pcap.bytes} bytes) to "
        f"{'standard output' if to_stdout else path} in {rates.seconds:.1f} s "
        f"({pcap.packets / secs:,.0f} pkt/s)"
        + (f"; the kernel dropped {lost} (rx_dropped + rx_ring_full)" if lost else "")
        + links.summary(),
        err=to_stdout,
    )


@click.command(name="send")
@click.argument("ifname", required=False)
@click.option("--from", "source", required=True, help="pcap file to replay")
@click.option("-r", "--rate", type=click.FloatRange(min=0, min_open=True), help="packets/s")
@click.option("-l", "--loop", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@json_option
def send_cmd(
    ifname: str | None, source: str, rate: float | None, loop: int, queue: int, as_json: bool
) -> None:
    """Replay the frames of a pcap file on IFNAME, LOOP times, at RATE packets/s (as
    fast as possible without). Ctrl-C or SIGTERM stops and prints what was sent."""
    need_root()
    frames = PcapReader(source).frames()
    if not frames:
        raise click.ClickException(f"{source} holds no packets")
    total = len(frames) * loop
    with bed_or_none(ifname) as tb:
        name = interface_name(ifname, tb)
        before = tb.link_stats(tb.peer) if tb is not None else {}
        with XskSocket(name, queue, rx_size=0) as sock:
            batch = 64 if rate is None else max(1, min(64, int(rate / 100)))
            links = LinkNotices()
            with Rates(f"send {name}:{queue}") as rates, Stopping() as stop:
                sent = 0
                for _ in range(loop):
                    for i in range(0, len(frames), batch):
                        if stop.asked:
                            break
                        chunk = frames[i : i + batch]
                        # All of the chunk, also when the link goes down on the way
                        # (send then queues part of it, and the next call says why).
                        while chunk and not stop.asked:
                            try:
                                n = sock.send(chunk, timeout=5.0)
                                links.saw(name, False)
                            except LinkDownError:
                                # Nothing more was queued: wait for the link.
                                links.saw(name, True)
                                time.sleep(0.1)
                                continue
                            sent += n
                            rates.add(n, sum(len(f) for f in chunk[:n]))
                            chunk = chunk[n:]
                        if rate is not None:
                            ahead = sent / rate - rates.seconds
                            if ahead > 0:
                                time.sleep(ahead)
                sock.flush(timeout=5.0)
                seconds = rates.seconds
            stats = sock.statistics()
        done = stats["tx_completed"]
        achieved = done / max(seconds, 1e-9)
        arrived = (
            tb.link_stats(tb.peer)["rx_packets"] - before.get("rx_packets", 0)
            if tb is not None
            else None
        )
    if as_json:
        print_json(
            {
                "source": source,
                "interface": name,
                "sent": done,
                "total": total,
                "seconds": seconds,
                "packets_per_second": achieved,
                "rate_asked": rate,
                "peer_received": arrived,
                "link_downs": sum(links.downs.values()),
            }
        )
        return
    msg = (
        f"sent {done} of {total} packets from {source} on {name} in {seconds:.3g} s "
        f"({achieved:,.0f} pkt/s)"
    )
    if rate is not None and achieved < 0.95 * rate and done == total:
        msg += f"; asked for {rate:,.0f} pkt/s: this is as fast as it went"
    if tb is not None:
        msg += f"; {tb.peer} received {arrived}"
    click.echo(msg + links.summary())
