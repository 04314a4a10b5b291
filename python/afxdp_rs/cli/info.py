"""``afxdp demo``, ``afxdp info`` and ``afxdp helper``."""

from __future__ import annotations

import socket
import sys
from typing import Any

import click
from pyroute2 import IPRoute
from rich import box
from rich.table import Table

from afxdp_rs._afxdp import interface_info
from afxdp_rs.cli.common import (
    MODES,
    Stopping,
    json_option,
    need_root,
    print_json,
    show,
)
from afxdp_rs.probe import default_choices, netdev_info
from afxdp_rs.types import XdpMode


@click.command()
@click.option("-n", "--packets", type=click.IntRange(min=1), default=300_000, show_default=True)
@click.option("-s", "--size", type=click.IntRange(18, 1514), default=64, show_default=True)
@click.option("-b", "--batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
def demo(packets: int, size: int, batch: int, mode: XdpMode) -> None:
    """Receive and send packets on a private veth test bed; print packets/s."""
    need_root()
    from afxdp_rs import demo as demo_mod

    code = demo_mod.run(packets, size, batch, mode)
    if code:
        sys.exit(code)


def _unknown(v: object) -> str:
    return "unknown" if v is None else str(v)


def _yes(v: object) -> str:
    return "unknown" if v is None else ("yes" if v else "no")


def _modes(i: dict[str, Any], long: bool = False) -> str:
    if i["native_xdp"] is None:
        return "skb (native: the driver does not say)" if long else "skb (native?)"
    return "native, skb" if i["native_xdp"] else "skb"


def _list(v: list[str] | None) -> str:
    return "unknown (not reported by this kernel)" if v is None else ", ".join(v) or "none"


def _napi(queues: list[dict[str, Any]] | None) -> str:
    if queues is None:
        return "unknown (not reported by this kernel)"
    rx = [f"rx {q['id']}: {q['napi_id'] or 'none'}" for q in queues if q["type"] == "rx"]
    if rx and all(q["napi_id"] is None for q in queues):
        return "none (the driver links no NAPI instance to its queues)"
    return ", ".join(rx) if rx else "none"


def _program(i: dict[str, Any]) -> str:
    return f"id {i['xdp_prog_id']} ({i['xdp_mode']})" if i["xdp_prog_id"] else "none"


def _queues(i: dict[str, Any], long: bool = False) -> str:
    if i["rx_queues"] is None and i["tx_queues"] is None:
        return "unknown (the driver does not say)" if long else "unknown"
    return f"{_unknown(i['rx_queues'])} rx, {_unknown(i['tx_queues'])} tx"


@click.command()
@click.argument("ifname", required=False)
@json_option
def info(ifname: str | None, as_json: bool) -> None:
    """Driver, queues, XDP modes and attached program of IFNAME, and whether zero-copy
    works; without IFNAME, one line for each interface of this network namespace."""
    need_root()
    if ifname is None:
        with IPRoute() as ipr:
            names = sorted(
                (link.get_attr("IFLA_IFNAME") for link in ipr.get_links()),
                key=lambda n: socket.if_nametoindex(n),
            )
        infos = [interface_info(n) for n in names]
        if as_json:
            print_json(infos)
            return
        table = Table(box=box.SIMPLE)
        for col in ("interface", "driver", "queues", "xdp modes", "zero-copy", "xdp program"):
            table.add_column(col)
        for i in infos:
            table.add_row(
                i["ifname"],
                i["driver"] or "unknown",
                _queues(i),
                _modes(i),
                _yes(i["zerocopy"]),
                _program(i),
            )
        show(table)
        return
    i = interface_info(ifname)
    kernel = netdev_info(ifname)
    chosen = default_choices(i, kernel)
    if as_json:
        print_json({**i, "kernel": kernel, "defaults": chosen})
        return
    rows = [
        ("interface", f"{i['ifname']} (index {i['ifindex']})"),
        ("driver", i["driver"] or "unknown"),
        ("mtu", str(i["mtu"])),
        ("queues", _queues(i, long=True)),
        ("xdp modes", _modes(i, long=True)),
        ("native xdp", _yes(i["native_xdp"])),
        ("zero-copy", _yes(i["zerocopy"])),
        ("xdp program", _program(i)),
        ("xdp features", _list(kernel["xdp_features"])),
        ("zc max segs", _unknown(kernel["xdp_zc_max_segs"])),
        ("rx metadata", _list(kernel["xdp_rx_metadata"])),
        ("xsk features", _list(kernel["xsk_features"])),
        ("napi ids", _napi(kernel["queues"])),
        ("defaults: mode", chosen["mode"]),
        ("defaults: bind", chosen["bind"]),
        ("defaults: multi-buffer", chosen["multi_buffer"]),
        *(("not reported", m) for m in kernel["missing"]),
    ]
    table = Table(show_header=False, box=None)
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", v)
    show(table)


@click.command()
@click.argument("ifname")
@click.option("--socket", "path", required=True, help="Unix socket path to serve on")
@click.option("-q", "--queues", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--start-queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@click.option("--timeout", type=float, help="seconds to wait for the worker")
@click.option(
    "--group", help="give the Unix socket to this group (with --socket-mode 660: its members)"
)
@click.option(
    "--socket-mode",
    "socket_mode",
    default="600",
    show_default=True,
    help="permission bits of the Unix socket, in octal",
)
def helper(
    ifname: str,
    path: str,
    queues: int,
    start_queue: int,
    mode: XdpMode,
    timeout: float | None,
    group: str | None,
    socket_mode: str,
) -> None:
    """Privileged helper: attach the XDP program, create the sockets and hand them to
    an unprivileged worker over a Unix socket. Whoever can connect gets the sockets:
    the Unix socket is only for this user (0600) unless --group/--socket-mode share it."""
    need_root()
    from afxdp_rs import privileged

    try:
        bits = int(socket_mode, 8)
    except ValueError:
        raise click.BadParameter(
            f"{socket_mode!r} is not octal permission bits (e.g. 600 or 660)",
            param_hint="--socket-mode",
        ) from None
    with Stopping() as stop:
        handed = privileged.serve(
            path,
            ifname,
            queues,
            start_queue,
            mode,
            timeout=timeout,
            socket_mode=bits,
            socket_group=group,
            stopped=lambda: stop.asked,
        )
    if handed:
        click.echo(f"handed {queues} socket(s) of {ifname} over on {path}")
    else:
        click.echo(f"stopped: no worker connected to {path}; nothing was handed over")
