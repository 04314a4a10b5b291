"""``afxdp demo``, ``afxdp info`` and ``afxdp helper``."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from afxdp_rs._afxdp import interface_info
from afxdp_rs.cli.common import (
    MODES,
    bed_or_none,
    interface_name,
    need_root,
)


@click.command()
@click.option("-n", "--packets", type=click.IntRange(min=1), default=300_000, show_default=True)
@click.option("-s", "--size", type=click.IntRange(18, 1514), default=64, show_default=True)
@click.option("-b", "--batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
def demo(packets: int, size: int, batch: int, mode: str) -> None:
    """Receive and send packets on a private veth test bed; print packets/s."""
    need_root()
    from afxdp_rs import demo as demo_mod

    code = demo_mod.run(packets, size, batch, mode)
    if code:
        sys.exit(code)


@click.command()
@click.argument("ifname", required=False)
def info(ifname: str | None) -> None:
    """Driver, queues, XDP modes and programs of IFNAME, and whether zero-copy works."""
    need_root()
    with bed_or_none(ifname) as tb:
        name = interface_name(ifname, tb)
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


@click.command()
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
    need_root()
    from afxdp_rs import privileged

    privileged.serve(path, ifname, queues, start_queue, mode, timeout=timeout)
    click.echo(f"handed {queues} socket(s) of {ifname} over on {path}")
