"""The C reference of ``afxdp bench drain --compare``: ``c/drain_libxdp.c``, the same
drain over libxdp's inline ring functions, compiled when the bench starts (``cc``, or
``AFXDP_BENCH_CC``, with ``AFXDP_BENCH_CFLAGS``; it needs libxdp's and libbpf's headers
and libraries: Debian's libxdp-dev) and run as a process of its own with an AF_XDP
socket on another rx queue of the same test bed, steered there by afxdp_rs's program."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["CDrain", "build"]

SOURCE = Path(__file__).with_name("c") / "drain_libxdp.c"


def build() -> tuple[str | None, str]:
    """Compiles the C drain; returns (the binary, or None, and what was used or why
    it could not be built)."""
    cc = os.environ.get("AFXDP_BENCH_CC", "cc")
    flags = shlex.split(os.environ.get("AFXDP_BENCH_CFLAGS", "-O2"))
    if shutil.which(cc) is None:
        return None, f"no C compiler ({cc}): the C side was not run"
    out = Path(tempfile.mkdtemp(prefix="afxdp-cdrain-")) / "drain_libxdp"
    r = subprocess.run(
        [cc, *flags, "-o", str(out), str(SOURCE), "-lxdp", "-lbpf"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        first = (r.stderr.strip().splitlines() or ["?"])[0]
        return None, (
            f"the C drain did not build ({first}); install libxdp-dev (xdp/xsk.h) for the "
            "C side: only afxdp_rs's side was run"
        )
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    name = (version.stdout.splitlines() or [cc])[0]
    return str(out), f"{cc} {' '.join(flags)} ({name}), libxdp's xsk.h"


class CDrain:
    """The C drain's process: a socket on `queue` of `ifname` in the XSKMAP `map_fd`,
    draining `batch` descriptors at a time when asked."""

    def __init__(
        self, binary: str, ifname: str, queue: int, map_fd: int, frames: int, batch: int
    ) -> None:
        self.proc = subprocess.Popen(
            [binary, ifname, str(queue), str(map_fd), str(frames), str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=[map_fd],
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.close()
            raise RuntimeError(f"the C drain did not start: {err.strip() or line}")

    def drain(self, field: bool) -> tuple[int, int]:
        """Empties its rx ring; returns (packets, nanoseconds)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("field\n" if field else "drain\n")
        self.proc.stdin.flush()
        packets, ns = self.proc.stdout.readline().split()
        return int(packets), int(ns)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> CDrain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
