"""``afxdp status`` and ``afxdp detach``: who holds an interface's XDP hook, and
removing afxdp_rs's own program from it."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from afxdp_rs._afxdp import detach_program, xdp_status
from afxdp_rs.cli.common import json_option, need_root, print_json, show


def _rows(st: dict[str, Any]) -> list[tuple[str, str]]:
    if not st["prog_id"]:
        return [("xdp program", "none")]
    whose = "afxdp_rs's" if st["ours"] else "not afxdp_rs's"
    rows = [("xdp program", f'id {st["prog_id"]} "{st["name"]}" ({st["mode"]} mode, {whose})')]
    if st["link_id"] is None:
        rows.append(("attached by", "netlink (no BPF link): stays until detached"))
    else:
        rows.append(("attached by", f"BPF link {st['link_id']}"))
        held = ", ".join(f"{comm} (pid {pid})" for pid, comm in st["holders"])
        rows.append(("held by", held or "nobody (a pinned link)"))
    if st["ours"]:
        for q in st["queues"]:
            takes = (
                f"packets matching {q['takes']}; the others go to the kernel stack"
                if q["takes"]
                else "every packet: none reaches the kernel stack"
            )
            rows.append(
                (f"rx queue {q['queue']}", takes + (", timestamped" if q["timestamps"] else ""))
            )
        if not st["queues"]:
            rows.append(("rx queues", "no socket takes any: all go to the kernel stack"))
    return rows


@click.command()
@click.argument("ifname")
@json_option
def status(ifname: str, as_json: bool) -> None:
    """Which XDP program is attached to IFNAME, by which BPF link, which processes hold
    it (the ones whose AF_XDP sockets it feeds), and for afxdp_rs's program which rx
    queues its sockets take packets of, and which packets."""
    need_root()
    st = xdp_status(ifname)
    if as_json:
        print_json(st)
        return
    table = Table(show_header=False, box=None, title=f"{ifname} (index {st['ifindex']})")
    for k, v in _rows(st):
        table.add_row(f"[bold]{k}[/]", v)
    show(table)


@click.command()
@click.argument("ifname")
@json_option
def detach(ifname: str, as_json: bool) -> None:
    """Remove afxdp_rs's XDP program from IFNAME. Any other program is left alone (exit
    status 1, saying whose it is). Processes still using it see their sockets stop,
    with an error that says the program was detached."""
    need_root()
    st = detach_program(ifname)
    if as_json:
        print_json(st)
        return
    held = ", ".join(f"{comm} (pid {pid})" for pid, comm in st["holders"])
    click.echo(
        f"detached afxdp_rs's program (id {st['prog_id']}, {st['mode']} mode) from {ifname}"
        + (f"; it was in use by {held}" if held else "")
    )
