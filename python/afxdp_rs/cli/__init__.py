"""The ``afxdp`` command line (also ``python -m afxdp_rs``).

Every command that takes an interface also runs without one, on its own veth test bed
in a private network namespace (gone when the command exits), so each can be tried at
once: ``afxdp capture -c 100 -w /tmp/x.pcap``.

Exit codes: 0 done (also when stopped by Ctrl-C or SIGTERM once the command's work
began, after printing what was done so far, however little); 1 a failure, or a loss
nothing accounts for (``verify``), or no privileges; 2 a usage error (a bad option, a
file, path or interface that cannot be used); 130 stopped while still setting up. A
reader of standard output that goes away early ends a command with 0. Errors and
warnings are one line each on standard error, starting ``afxdp:``;
``AFXDP_TRACEBACK=1`` adds the Python traceback of an unexpected error.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings
from types import FrameType
from typing import Any, TextIO

import click
from rich.markup import escape

from afxdp_rs.cli.bench import bench
from afxdp_rs.cli.capture import capture
from afxdp_rs.cli.common import ReaderGone, cli_words, err, warn
from afxdp_rs.cli.forward import forward
from afxdp_rs.cli.info import demo, helper, info
from afxdp_rs.cli.send import send_cmd
from afxdp_rs.cli.status import detach, status
from afxdp_rs.cli.verify import verify
from afxdp_rs.cli.vhost import vhost_user
from afxdp_rs.errors import (
    AfXdpError,
    BusyError,
    ConfigError,
    InterfaceNotFoundError,
    OffloadWarning,
    QueueError,
)
from afxdp_rs.testbed import VethTestbed

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Commands(click.Group):
    """The group of commands: a reader of standard output that goes away ends any of
    them cleanly (click would turn the broken pipe into exit 1 itself)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise ReaderGone() from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="afxdp_rs")
def cli() -> None:
    """AF_XDP from the command line: inspect, capture, replay, forward, serve a VM.

    Commands given no interface run on their own veth test bed."""


for command in (
    demo,
    info,
    status,
    capture,
    send_cmd,
    forward,
    verify,
    bench,
    vhost_user,
    helper,
    detach,
):
    cli.add_command(command)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends a command as Ctrl-C does: it stops, keeps what it did (files
    complete) and prints its summary."""
    raise KeyboardInterrupt


def _fail(message: str) -> None:
    err.print("[red]afxdp:[/]", escape(cli_words(message)), highlight=False)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as the command line prints them: one line of its own, in its words. On
    its own test bed it keeps quiet about the veths' offloads (its test frames are not
    TCP or UDP with partial checksums, which is what those warnings are about)."""
    if issubclass(category, OffloadWarning) and VethTestbed.ephemeral_open:
        return
    warn(str(message))


def main(argv: list[str] | None = None, *, program: bool = False) -> int:
    """Runs a command and returns the exit code. `program`: this is the ``afxdp``
    process itself, about to exit: a signal that comes after the command is done (the
    same Ctrl-C or SIGTERM again) is ignored instead of changing the exit status."""
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        if threading.current_thread() is not threading.main_thread():
            return _main(argv)  # signals belong to the main thread (main() run by a test)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return _main(argv)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_IGN if program else handler)
    finally:
        warnings.showwarning = shown


def entry() -> None:
    """The ``afxdp`` program (and ``python -m afxdp_rs``)."""
    sys.exit(main(program=True))


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="afxdp", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "afxdp"
        _fail(f"{e.format_message()} (see {where} --help)")
        return EXIT_USAGE
    except click.ClickException as e:
        _fail(e.format_message())
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted (Ctrl-C or SIGTERM) while setting up: nothing was done")
        return EXIT_INTERRUPTED
    except (BrokenPipeError, ReaderGone):
        # The reader of standard output went away (`... -w - | tcpdump -c 10 -r -`):
        # it had what it wanted. Nothing more can be written there, also not at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (ConfigError, QueueError, InterfaceNotFoundError, BusyError) as e:
        _fail(str(e))
        return EXIT_USAGE
    except AfXdpError as e:
        _fail(str(e))
        return EXIT_FAILURE
    except OSError as e:
        # A file the user named (pcap to read or write, socket path): say which, why,
        # and what to do.
        if e.filename is None:
            _fail(str(e))
            return EXIT_FAILURE
        hint = {
            IsADirectoryError: "name a file, not a directory",
            FileNotFoundError: "check the path (its directory must exist)",
            PermissionError: "choose a path this user may use, or change its permissions",
        }.get(type(e), "")
        _fail(f"{e.filename}: {e.strerror or e}" + (f": {hint}" if hint else ""))
        return EXIT_USAGE
    except ValueError as e:
        _fail(str(e))
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("AFXDP_TRACEBACK"):
            traceback.print_exc()
        _fail(
            f"unexpected {type(e).__name__}: {e} (AFXDP_TRACEBACK=1 shows where; please report it)"
        )
        return EXIT_FAILURE
    return EXIT_OK
