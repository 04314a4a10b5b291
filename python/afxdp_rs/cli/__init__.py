"""The ``afxdp`` command line (also ``python -m afxdp_rs``).

Every command that takes an interface also runs without one, on its own veth test bed
in a private network namespace (gone when the command exits), so each can be tried at
once: ``sudo afxdp capture -c 100 -w /tmp/x.pcap``.
"""

from __future__ import annotations

import click

from afxdp_rs.cli.bench import bench
from afxdp_rs.cli.capture import capture, send_cmd
from afxdp_rs.cli.common import err
from afxdp_rs.cli.forward import forward
from afxdp_rs.cli.info import demo, helper, info
from afxdp_rs.cli.verify import verify
from afxdp_rs.cli.vhost import vhost_user
from afxdp_rs.errors import AfXdpError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="afxdp_rs")
def cli() -> None:
    """AF_XDP from the command line: inspect, capture, replay, forward, serve a VM.

    Commands given no interface run on their own veth test bed."""


for command in (demo, info, capture, send_cmd, forward, verify, bench, vhost_user, helper):
    cli.add_command(command)


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
