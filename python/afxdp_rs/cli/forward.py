"""``afxdp forward``: zero-copy forwarding between two interfaces."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from afxdp_rs._afxdp import Forwarder, interface_info
from afxdp_rs.cli.common import (
    MODES,
    Intervals,
    LinkNotices,
    QueuesParam,
    Stopping,
    bed_or_none,
    err,
    generate,
    interval_option,
    json_option,
    link_stats,
    need_root,
    print_json,
    until,
    warn_unheard,
    warned,
)
from afxdp_rs.types import BindMode, XdpMode


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
        row["link_down"] = row.get("link_down", False) or d["from_down"]
        row["link_downs"] = max(row.get("link_downs", 0), d["from_downs"])
        for k in ("rx_dropped", "rx_ring_full"):
            row[k] += d["rx"][k]
    for row in out.values():
        row["tx_dropped"] = link_stats(row["to"]).get("tx_dropped", 0) - tx0[row["to"]]
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


@click.command()
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
    "-B",
    "--busy-poll",
    is_flag=True,
    help="an idle queue pair busy-polls both devices instead of sleeping (needs a NAPI ID)",
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
@interval_option
@json_option
def forward(
    if_a: str | None,
    if_b: str | None,
    queues: int | str,
    start_queue: int,
    count: int | None,
    duration: float | None,
    mode: XdpMode,
    bind: BindMode,
    busy_poll: bool,
    no_checksums: bool,
    fix_offloads: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Forward every frame between IF_A and IF_B, both ways, without copying it (one
    UMEM per queue pair, a Rust thread each), completing partial checksums on the way.
    Shows per direction what was forwarded and what was lost, with the kernel counter
    that holds each loss. Ctrl-C stops and prints the summary."""
    need_root()
    if (if_a is None) != (if_b is None):
        raise click.UsageError("give both interfaces, or none for the test bed")
    if if_a is None and count is None and duration is None:
        count = 1000
    with bed_or_none(if_a) as tb, contextlib.ExitStack() as stack:
        if tb is not None:
            tb.add_veth("fwd0", "fwd1")
            a_name, b_name = tb.inner, "fwd0"
            before = link_stats("fwd1").get("rx_packets", 0)
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
                warn_unheard(n, list(range(start_queue, start_queue + pairs)))
        fwd = warned(
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
                busy_poll=busy_poll,
            ),
        )
        stack.callback(fwd.stop)
        tx0 = {n: link_stats(n).get("tx_dropped", 0) for n in (a_name, b_name)}
        traffic = stack.enter_context(contextlib.ExitStack())
        sent = [0]
        if tb is not None:
            sent = traffic.enter_context(generate(tb, tb.peer, count))
        done = until(count, duration)
        start = time.perf_counter()
        rows = _directions(fwd, tx0)
        live = (
            stack.enter_context(Live(_forward_table(rows, 0.0), console=err, refresh_per_second=4))
            if err.is_terminal
            else None
        )
        links = LinkNotices()
        ticks = Intervals(interval, as_json)
        # Signals stop the run, and are held through the accounting after it (a second
        # one interrupts at once).
        with Stopping() as stop:
            while not stop.asked and not done(sum(r["packets"] for r in rows)):
                if fwd.wait(0.1):
                    break  # a queue pair ended: stop() below says why
                rows = _directions(fwd, tx0)
                for r in rows:
                    links.saw(r["from"], r["link_down"])
                if live is not None:
                    live.update(_forward_table(rows, time.perf_counter() - start))
                if ticks.due():
                    ticks.emit(
                        {
                            "packets": sum(r["packets"] for r in rows),
                            "bytes": sum(r["bytes"] for r in rows),
                        }
                    )
            seconds = time.perf_counter() - start
            if tb is not None:
                # The test bed's traffic ends first; what it sent is forwarded (or
                # counted as lost) before counting, waiting at most 5 s (not at all
                # once a queue pair ended).
                traffic.close()
                limit = time.monotonic() + 5.0
                while time.monotonic() < limit and fwd.running:
                    first = next(r for r in _directions(fwd, tx0) if r["from"] == a_name)
                    accounted = first["packets"] + first["rx_dropped"] + first["rx_ring_full"]
                    out = link_stats("fwd1").get("rx_packets", 0) - before
                    if accounted >= sent[0] and out + first["tx_dropped"] >= first["packets"]:
                        break
                    time.sleep(0.01)
            rows = _directions(fwd, tx0)
        fwd.stop()  # raises what ended a queue pair, if anything did
        if live is not None:
            live.update(_forward_table(rows, seconds))
            live.stop()
        total = sum(r["packets"] for r in rows)
        arrived = None
        if tb is not None:
            arrived = link_stats("fwd1").get("rx_packets", 0) - before
        if as_json:
            print_json(
                {"seconds": seconds, "packets": total, "directions": rows}
                | ({"test_bed_received": arrived} if arrived is not None else {}),
                lines=True,
            )
            return
        lines = [
            f"forwarded {total} packets between {a_name} and {b_name} in {seconds:.1f} s"
            + links.summary()
        ]
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
        if arrived is not None:
            lines[0] += f"; fwd1 received {arrived}"
    click.echo("\n".join(lines))
