"""``afxdp vhost-user``: a virtual machine's network over AF_XDP sockets."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import click
from pyroute2 import IPRoute
from rich.live import Live
from rich.table import Table

from afxdp_rs._afxdp import VhostUser, interface_info
from afxdp_rs.cli.common import (
    MODES,
    Intervals,
    ProgramWatch,
    QueuesParam,
    Stopping,
    bed_or_none,
    err,
    interval_option,
    need_root,
    warn_unheard,
    warned,
)
from afxdp_rs.types import BindMode, XdpMode
from afxdp_rs.vhost import qemu_args

#: The test bed's address, which the guest reaches through the device.
BED_ADDRESS = "10.0.0.1/24"

_COUNTERS = ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes")
_DROPS = ("tx_drop_bad_chain", "tx_drop_too_large", "tx_drop_port_refused", "rx_bad_chain")
_DROPS_RX = ("rx_drop_too_large",)
_KERNEL = ("rx_dropped", "rx_ring_full")


def _totals(dev: VhostUser) -> dict[str, int]:
    """Every counter summed over the queue pairs."""
    out: dict[str, int] = {}
    for q in dev.statistics():
        for k, v in q.items():
            if k == "kernel":
                for kk in _KERNEL:
                    out[kk] = out.get(kk, 0) + int(v[kk])
            elif k != "queue":
                out[k] = out.get(k, 0) + int(v)
    return out


def _lost(t: dict[str, int]) -> int:
    return sum(t[k] for k in _DROPS + _DROPS_RX + _KERNEL)


def _table(dev: VhostUser, t: dict[str, int], seconds: float) -> Table:
    secs = max(seconds, 1e-9)
    g = Table.grid(padding=(0, 2))
    state = "[green]connected[/]" if dev.connected else "[yellow]waiting for a frontend[/]"
    g.add_row(f"[bold]{dev.socket_path}[/]", state, f"{seconds:.0f} s")
    for way, key in (("guest -> wire", "tx"), ("wire -> guest", "rx")):
        g.add_row(
            way,
            f"{t[key + '_packets']:,} packets",
            f"{t[key + '_packets'] / secs:,.0f} pkt/s",
            f"{t[key + '_bytes'] * 8 / secs / 1e6:,.1f} Mbit/s",
        )
    g.add_row("lost", f"{_lost(t):,}", "", "")
    return g


def _qemu_hint(path: Path, pairs: int, client: bool) -> str:
    args = qemu_args(path, queues=pairs, memory="<RAM>", client=client)
    lines = [" ".join(args[i : i + 2]) for i in range(0, len(args), 2)]
    return (
        "give QEMU (its -m RAM, shared):\n  "
        + "\n  ".join(lines)
        + "\n(under TCG, without KVM: add vectors=0 to the -device, or QEMU 7.2 crashes)"
    )


def _summary(dev: VhostUser, t: dict[str, int], seconds: float) -> list[str]:
    lines = [
        f"served {dev.connections} connection(s) on {dev.socket_path} in {seconds:.1f} s: "
        f"guest -> {dev.interface} {t['tx_packets']:,} packets ({t['tx_bytes']:,} bytes), "
        f"{dev.interface} -> guest {t['rx_packets']:,} packets ({t['rx_bytes']:,} bytes); "
        f"lost {_lost(t):,}"
    ]
    if _lost(t):
        held = ", ".join(f"{k} {t[k]:,}" for k in _DROPS + _DROPS_RX + _KERNEL if t[k])
        lines.append(f"  lost in: {held} (kernel counters: rx_dropped, rx_ring_full)")
    return lines


@click.command(name="vhost-user")
@click.argument("ifname", required=False)
@click.option(
    "-s",
    "--socket",
    "path",
    type=click.Path(path_type=Path),
    required=True,
    help="the vhost-user socket: listened on (or, with --client, connected to)",
)
@click.option(
    "-q",
    "--queues",
    type=QueuesParam(),
    default=1,
    show_default=True,
    help="queue pairs: pair i uses queue START+i of IFNAME (all: every queue)",
)
@click.option("--start-queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--client", is_flag=True, help="connect to a frontend listening on the socket")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option(
    "--bind", type=click.Choice(["auto", "copy", "zerocopy"]), default="auto", show_default=True
)
@click.option("--mac", help="MAC address in the device's config space (QEMU sets its own)")
@click.option("--mtu", type=click.IntRange(68, 65535), help="MTU offered to the guest")
@click.option(
    "--queue-size",
    type=click.Choice(["256", "512", "1024", "2048", "4096"]),
    default="1024",
    show_default=True,
    help="largest virtqueue the frontend may set up",
)
@click.option("-d", "--duration", type=click.FloatRange(min=0), help="stop after SECONDS")
@click.option(
    "--fix-offloads",
    is_flag=True,
    help="turn off the offloads that make packets arrive unfinished or too large",
)
@interval_option
def vhost_user(
    ifname: str | None,
    path: Path,
    queues: int | str,
    start_queue: int,
    client: bool,
    mode: XdpMode,
    bind: BindMode,
    mac: str | None,
    mtu: int | None,
    queue_size: str,
    duration: float | None,
    fix_offloads: bool,
    interval: float,
) -> None:
    """Serve a virtio-net device to a VM (QEMU -netdev vhost-user) on the socket, its
    packets sent and received through AF_XDP sockets on IFNAME: one socket per queue
    pair. Serves one VM after another (a reboot, a QEMU restart with reconnect=1)
    until Ctrl-C or SIGTERM, then prints what went each way and what was lost.

    Without IFNAME: on its own veth test bed, whose far end has the address 10.0.0.1
    (give the guest 10.0.0.2/24)."""
    need_root()
    with bed_or_none(ifname) as tb, contextlib.ExitStack() as stack:
        if tb is not None:
            with IPRoute() as ipr:
                (idx,) = ipr.link_lookup(ifname=tb.peer)
                addr, plen = BED_ADDRESS.split("/")
                ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
            name = tb.inner
        else:
            assert ifname is not None
            name = ifname
        if queues == "all":
            queues = interface_info(name).get("rx_queues") or 1
        pairs = int(queues)
        if pairs < 1:
            raise click.BadParameter("give at least one queue pair", param_hint="--queues")
        if tb is None:
            warn_unheard(name, list(range(start_queue, start_queue + pairs)))
        options: dict[str, Any] = {
            "queues": pairs,
            "start_queue": start_queue,
            "client": client,
            "mode": mode,
            "bind": bind,
            "mac": mac,
            "mtu": mtu,
            "queue_size": int(queue_size),
            "fix_offloads": fix_offloads,
        }
        dev = warned(tb, lambda: VhostUser(name, path, **options))
        stack.callback(dev.stop)
        program = ProgramWatch(name)
        stop = stack.enter_context(Stopping())
        where = f"queue{'s' if pairs > 1 else ''} {start_queue}"
        if pairs > 1:
            where += f"..{start_queue + pairs - 1}"
        verb = "connecting to" if client else "listening on"
        err.print(f"{verb} {path} for a VM on {name} {where}", highlight=False)
        if tb is not None:
            err.print(f"[dim]the guest reaches {BED_ADDRESS} on the test bed[/]")
        err.print(f"[dim]{_qemu_hint(path, pairs, client)}[/]", highlight=False)
        start = time.monotonic()
        t = _totals(dev)
        live = (
            stack.enter_context(Live(_table(dev, t, 0.0), console=err, refresh_per_second=2))
            if err.is_terminal
            else None
        )
        seen = 0
        ticks = Intervals(interval, as_json=False)
        while not stop.asked and (duration is None or time.monotonic() - start < duration):
            dev.wait_connected(0.25, connected=not dev.connected)
            for e in dev.events(seen):
                err.print(e, highlight=False)
                seen += 1
            if not dev.running:
                break  # stop() below raises what ended it
            program.check()
            t = _totals(dev)
            if ticks.due():
                ticks.emit(
                    {
                        "packets": t["tx_packets"] + t["rx_packets"],
                        "bytes": t["tx_bytes"] + t["rx_bytes"],
                    }
                )
            if live is not None:
                live.update(_table(dev, t, time.monotonic() - start))
        seconds = time.monotonic() - start
        t = _totals(dev)
        if live is not None:
            live.update(_table(dev, t, seconds))
            live.stop()
        lines = _summary(dev, t, seconds)
        dev.stop()  # raises what ended serving, if anything did
    click.echo("\n".join(lines))
