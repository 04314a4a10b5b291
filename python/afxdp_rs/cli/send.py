"""``afxdp send``: replay a capture file (pcap or pcapng) on an interface, as fast as it
goes or paced as tcpreplay paces: packets/s, Mbit/s, or the recorded timing."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import click

from afxdp_rs._afxdp import XskSocket
from afxdp_rs.cli.common import (
    Intervals,
    LinkNotices,
    Rates,
    Stopping,
    UsageProblem,
    bed_or_none,
    interface_name,
    interval_option,
    json_option,
    link_stats,
    need_root,
    pick_interface,
    print_json,
)
from afxdp_rs.errors import LinkDownError
from afxdp_rs.pcap import PcapReader

BATCH = 64


class _Sends(Protocol):
    def send(self, packets: list[bytes], timeout: float) -> int: ...


def _schedule(
    records: list[tuple[float, bytes]],
    rate: float | None,
    mbps: float | None,
    multiplier: float | None,
) -> tuple[list[float], float] | None:
    """When each packet of one pass is due (seconds from the pass's start), and how
    long a pass lasts; None: as fast as possible."""
    if rate is not None:
        due = [k / rate for k in range(len(records))]
        return due, len(records) / rate
    if mbps is not None:
        bits = list(itertools.accumulate((len(f) * 8 for _, f in records), initial=0))
        due = [b / (mbps * 1e6) for b in bits[:-1]]
        return due, bits[-1] / (mbps * 1e6)
    if multiplier is not None:
        first = records[0][0]
        due = [max(0.0, ts - first) / multiplier for ts, _ in records]
        # The next pass starts one average gap after the last packet of this one.
        gap = due[-1] / (len(due) - 1) if len(due) > 1 else 0.0
        return due, due[-1] + gap
    return None


class _Paced:
    """The frames in chunks of those due now (at most BATCH), waiting for each chunk's
    time; ends early when stopped. Time given to `pause` (a link that was down) moves
    everything still due later: the rate asked for holds afterwards too, instead of
    the missed packets leaving in one burst at line rate."""

    def __init__(
        self,
        frames: list[bytes],
        plan: tuple[list[float], float],
        loops: int,
        stop: Stopping,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._frames, self._plan, self._loops, self._stop = frames, plan, loops, stop
        self._clock = clock
        self._paused = 0.0

    def pause(self, seconds: float) -> None:
        self._paused += seconds

    def __iter__(self) -> Iterator[list[bytes]]:
        frames, stop = self._frames, self._stop
        due, period = self._plan
        start = self._clock()
        for n in range(self._loops):
            i = 0
            while i < len(frames) and not stop.asked:
                base = start + self._paused + n * period
                wait = base + due[i] - self._clock()
                if wait > 0:
                    stop.sleep(wait)
                    continue
                now = self._clock() - base
                j = min(bisect.bisect_right(due, now, lo=i), i + BATCH)
                yield frames[i : max(j, i + 1)]
                i = max(j, i + 1)
            if stop.asked:
                return


class _Sender:
    """Sends chunks whole, also across a link that goes down on the way (send then
    queues part of a chunk, and the next call says why): while the link is down nothing
    is queued and it waits, and the time it waited pauses the pacer."""

    def __init__(
        self,
        sock: _Sends,
        name: str,
        links: LinkNotices,
        paced: _Paced | None,
        stop: Stopping,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sock, self._name, self._links = sock, name, links
        self._paced, self._stop, self._clock = paced, stop, clock
        self._down_since: float | None = None

    def send(self, chunk: list[bytes], deadline: float | None) -> tuple[int, int]:
        """All of `chunk` (less when stopped, or when `deadline` passes while the link
        is down): how many packets and bytes were queued."""
        packets = size = 0
        while chunk and not self._stop.asked:
            try:
                n = self._sock.send(chunk, timeout=0.5)
            except LinkDownError:
                self._links.saw(self._name, True)  # nothing more was queued: wait
                if self._down_since is None:
                    self._down_since = self._clock()
                if deadline is not None and self._clock() >= deadline:
                    break
                self._stop.sleep(0.1)
                continue
            self._links.saw(self._name, False)
            if self._down_since is not None and self._paced is not None:
                self._paced.pause(self._clock() - self._down_since)
            self._down_since = None
            packets += n
            size += sum(len(f) for f in chunk[:n])
            chunk = chunk[n:]
        return packets, size


def _fast(frames: list[bytes], loops: int, stop: Stopping) -> Iterator[list[bytes]]:
    for _ in range(loops):
        for i in range(0, len(frames), BATCH):
            if stop.asked:
                return
            yield frames[i : i + BATCH]


@click.command(name="send")
@click.argument("ifname", required=False)
@click.option("-i", "--interface", "iface", help="the interface (or give it as the argument)")
@click.option("--from", "source", required=True, help="pcap or pcapng file to replay (-: stdin)")
@click.option(
    "-r",
    "-p",
    "--rate",
    "--pps",
    "rate",
    type=click.FloatRange(min=0, min_open=True),
    help="packets per second",
)
@click.option(
    "-M", "--mbps", type=click.FloatRange(min=0, min_open=True), help="megabits per second"
)
@click.option(
    "-x",
    "--multiplier",
    type=click.FloatRange(min=0, min_open=True),
    help="the recorded timing, this many times as fast (1: as recorded)",
)
@click.option("--timing", is_flag=True, help="the recorded timing (as -x 1)")
@click.option("-l", "--loop", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="stop after SECONDS")
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@interval_option
@json_option
def send_cmd(
    ifname: str | None,
    iface: str | None,
    source: str,
    rate: float | None,
    mbps: float | None,
    multiplier: float | None,
    timing: bool,
    loop: int,
    duration: float | None,
    queue: int,
    interval: float,
    as_json: bool,
) -> None:
    """Replay the frames of a capture file on IFNAME, LOOP times: as fast as possible,
    at RATE packets/s, at MBPS, or at the recorded timing (--timing, or -x to speed it
    up or slow it down). A link that goes down pauses the replay; it resumes at its
    pace. Ctrl-C or SIGTERM stops within a second and prints what was sent."""
    need_root()
    ifname, extra = pick_interface(iface, (ifname,) if ifname else ())
    if extra:
        raise click.UsageError(f"{extra[0]!r}: give the interface once (-i or the argument)")
    if timing:
        multiplier = multiplier or 1.0
    if sum(x is not None for x in (rate, mbps, multiplier)) > 1:
        raise click.UsageError("--rate, --mbps and --timing/-x pace in different ways: give one")
    records = list(PcapReader(source).records())
    if not records:
        raise UsageProblem(f"{source} holds no packets: nothing to send")
    frames = [f for _, f in records]
    total = len(frames) * loop
    plan = _schedule(records, rate, mbps, multiplier)
    with bed_or_none(ifname) as tb:
        name = interface_name(ifname, tb)
        before = tb.link_stats(tb.peer) if tb is not None else {}
        tx_dropped0 = link_stats(name).get("tx_dropped", 0)
        with XskSocket(name, queue, rx_size=0) as sock:
            links = LinkNotices()
            ticks = Intervals(interval, as_json)
            deadline = None if duration is None else time.monotonic() + duration
            with Rates(f"send {name}:{queue}") as rates, Stopping() as stop:
                paced = None if plan is None else _Paced(frames, plan, loop, stop)
                chunks = _fast(frames, loop, stop) if paced is None else iter(paced)
                sender = _Sender(sock, name, links, paced, stop)
                for chunk in chunks:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    n, size = sender.send(chunk, deadline)
                    rates.add(n, size)
                    if ticks.due():
                        ticks.emit({"packets": rates.packets, "bytes": rates.bytes})
                # What is queued leaves: waited for up to 5 s, 1 s once stopped.
                limit = time.monotonic() + 5.0
                while not sock.flush(timeout=0.1) and time.monotonic() < limit:
                    if stop.asked:
                        limit = min(limit, time.monotonic() + 1.0)
                seconds = rates.seconds
            stats = sock.statistics()
        # What the kernel dropped at the interface meanwhile (a frame that was being sent
        # as the link went down, on kernels that drop it then).
        tx_dropped = link_stats(name).get("tx_dropped", 0) - tx_dropped0
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
                "queued": rates.packets,
                "total": total,
                "seconds": seconds,
                "packets_per_second": achieved,
                "rate_asked": rate,
                "mbps_asked": mbps,
                "multiplier": multiplier,
                "peer_received": arrived,
                "tx_dropped": tx_dropped,
                "link_downs": sum(links.downs.values()),
            },
            lines=True,
        )
        return
    msg = (
        f"sent {done} of {total} packets from {source} on {name} in {seconds:.3g} s "
        f"({achieved:,.0f} pkt/s)"
    )
    if rate is not None and achieved < 0.95 * rate and done == total:
        msg += f"; asked for {rate:,.0f} pkt/s: this is as fast as it went"
    if done < rates.packets:
        msg += f"; {rates.packets - done} queued were not sent when it stopped"
    if tx_dropped:
        msg += f"; {name} counted {tx_dropped} dropped meanwhile (tx_dropped)"
    if tb is not None:
        msg += f"; {tb.peer} received {arrived}"
    click.echo(msg + links.summary())
