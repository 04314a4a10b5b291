"""A tiny Linux guest under QEMU, driven over its serial console, for end-to-end network tests.

`scripts/guest-image` builds the guest (a Debian cloud kernel and a busybox initramfs that
loads the virtio-net modules); `Guest` boots it with the caller's network devices and runs
shell commands in it:

    netdev = ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off",
              "-device", "virtio-net-pci,netdev=n0"]
    with Guest(DEFAULT_IMAGE_DIR, netdev, cmdline_extra="afxdp.ip=10.0.0.2/24") as guest:
        guest.wait_ready()
        rc, out = guest.run("ping -c 3 10.0.0.1")

The guest runs under TCG (no KVM needed) with its RAM in a shared memfd, as a vhost-user
backend needs. Its kernel command line takes `afxdp.ip=ADDR/LEN` (eth0), `afxdp.ipN=` (ethN),
`afxdp.mtu=`, `afxdp.mtuN=` and `afxdp.linkwait=SECONDS` (how long /init waits for every
ethN to be up, default 5). The console protocol: the guest prints `@@READY@@` once up,
then reads lines `TAG COMMAND`, runs each COMMAND with sh (stdin /dev/null, stdout and
stderr to the console) and prints `@@DONE TAG RC@@` after it.

Under TCG a boot takes about 3 s, a reboot 3 to 15 s (the new kernel overwrites code that
QEMU had translated), a command round trip about 10 ms; the default timeouts are generous.
"""

from __future__ import annotations

import base64
import ctypes
import itertools
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE_DIR = REPO / "target" / "guest"
IMAGE_SCRIPT = REPO / "scripts" / "guest-image"

READY_MARKER = b"@@READY@@"
# How much of the console a failure message quotes (its end; the whole is in `console`).
_QUOTE_LIMIT = 64 * 1024
_PANIC = re.compile(rb"Kernel panic - not syncing")
_PANIC_END = re.compile(rb"---\[ end Kernel panic")
# Resolved here, not between fork and exec, where only async-signal-safe work belongs.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


class GuestError(RuntimeError):
    """The guest or QEMU failed: QEMU exited, the guest panicked, a protocol error."""


class GuestTimeout(GuestError, TimeoutError):
    """The guest did not come up, or a command did not finish, in time."""


class GuestCommandError(GuestError):
    """`Guest.check` ran a command that exited non-zero."""

    def __init__(self, command: str, rc: int, output: str) -> None:
        super().__init__(f"guest command {command!r} exited {rc}:\n{output}")
        self.command = command
        self.rc = rc
        self.output = output


def build_image(
    image_dir: str | os.PathLike[str] = DEFAULT_IMAGE_DIR, timeout: float = 1800
) -> Path:
    """Builds the guest kernel and initramfs into `image_dir` (a no-op when up to date)."""
    subprocess.run([str(IMAGE_SCRIPT), os.fspath(image_dir)], check=True, timeout=timeout)
    return Path(image_dir)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: QEMU gets SIGKILL when the process (strictly,
    # the thread) that started it dies, so a crashed test run leaves no guest behind.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()


class Guest:
    """One QEMU guest. Starts QEMU on construction; `close` (or leaving a `with`) kills it.

    `netdev_args` are QEMU arguments for the guest's network, e.g. a `-netdev` and a
    `-device virtio-net-pci`; `cmdline_extra` is appended to the kernel command line.
    `smp` > 1 is needed for the guest to use more than one queue pair of a multi-queue NIC
    (virtio_net enables min(queue pairs, CPUs)); with `accel="tcg,thread=single"` the vCPUs
    share one host thread. `command_prefix` runs QEMU under a wrapper, e.g.
    `["ip", "netns", "exec", "ns0"]`. `log_path` receives a copy of the console.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        netdev_args: Sequence[str] = (),
        memory_mb: int = 256,
        cmdline_extra: str = "",
        name: str = "afxdp-guest",
        *,
        smp: int = 1,
        accel: str = "tcg",
        qemu: str = "qemu-system-x86_64",
        extra_args: Sequence[str] = (),
        command_prefix: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        image = Path(image_dir)
        kernel = image / "vmlinuz"
        initrd = image / "initramfs.gz"
        for f in (kernel, initrd):
            if not f.is_file():
                raise GuestError(
                    f"{f} is missing: build the guest with scripts/guest-image {image}"
                )
        self.name = name
        self.cmdline = f"console=ttyS0 {cmdline_extra}".strip()
        # fmt: off
        self.argv: list[str] = [
            *command_prefix,
            qemu,
            "-name", name,
            "-accel", accel,
            "-machine", "pc",
            "-smp", str(smp),
            "-m", f"{memory_mb}M",
            "-object", f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on",
            "-numa", "node,memdev=mem",
            "-nodefaults",
            "-no-user-config",
            "-display", "none",
            "-chardev", "stdio,id=con,signal=off",
            "-serial", "chardev:con",
            "-kernel", str(kernel),
            "-initrd", str(initrd),
            "-append", self.cmdline,
            *netdev_args,
            *extra_args,
        ]
        # fmt: on
        self._cond = threading.Condition()
        self._console = bytearray()
        self._stderr = bytearray()
        self._eof = False
        self._closed = False
        self._ready = False
        # Where the current boot's output starts, and the tag of a command that timed out and
        # whose end marker is still to come.
        self._boot_from = 0
        self._stale: re.Pattern[bytes] | None = None
        self._seq = itertools.count(1)
        self._log: IO[bytes] | None = open(log_path, "wb") if log_path is not None else None
        self._started = time.monotonic()
        self.boot_seconds: float | None = None
        try:
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            if self._log is not None:
                self._log.close()
            raise
        self._finalizer = weakref.finalize(self, _kill_group, self._proc)
        assert self._proc.stdin is not None
        self._stdin_fd = self._proc.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._threads = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> Guest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ready" if self._ready else "booting"
        return f"<Guest {self.name} pid={self._proc.pid} {state}>"

    # -- public API ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """QEMU's process id (of `command_prefix` if that does not exec QEMU)."""
        return self._proc.pid

    @property
    def console(self) -> str:
        """Everything the guest has written to its console so far, all boots included."""
        with self._cond:
            return self._console.decode("utf-8", "replace")

    @property
    def qemu_stderr(self) -> str:
        with self._cond:
            return self._stderr.decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Waits until the guest is up; returns the seconds from QEMU's start (or the
        reboot) to ready. Raises `GuestTimeout`, or `GuestError` if QEMU exits, with the
        console output so far in the message."""
        if self._ready:
            assert self.boot_seconds is not None
            return self.boot_seconds
        match = self._wait(
            re.compile(re.escape(READY_MARKER) + rb"\n"),
            self._boot_from,
            timeout,
            "the guest to boot",
        )
        self.boot_seconds = time.monotonic() - self._started
        self._ready = True
        self._boot_from = match.end()
        return self.boot_seconds

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Runs a shell command (one line) in the guest; returns its exit status and its
        stdout and stderr together. Its stdin is /dev/null. A command still running after
        `timeout` raises `GuestTimeout`; the guest goes on running it, and the next `run`
        first waits (within its own timeout) for it to finish."""
        if "\n" in command or "\r" in command:
            raise ValueError("a guest command is one line: join lines with ';'")
        self._require_ready()
        deadline = time.monotonic() + timeout
        if self._stale is not None:
            self._wait(self._stale, self._boot_from, timeout, "an earlier command that timed out")
            self._stale = None
        tag = f"c{next(self._seq)}"
        done = re.compile(rb"@@DONE " + re.escape(tag.encode()) + rb" (-?\d+)@@\n")
        with self._cond:
            start = len(self._console)
        self._send(f"{tag} {command}\n".encode(), deadline)
        try:
            match = self._wait(
                done, start, deadline - time.monotonic(), f"guest command {command!r}"
            )
        except GuestTimeout:
            self._stale = done
            raise
        with self._cond:
            output = bytes(self._console[start : match.start()])
        self._boot_from = match.end()
        return int(match.group(1)), output.decode("utf-8", "replace")

    def check(self, command: str, timeout: float = 60.0) -> str:
        """`run`, raising `GuestCommandError` unless the command exits 0; returns its output."""
        rc, output = self.run(command, timeout)
        if rc != 0:
            raise GuestCommandError(command, rc, output)
        return output

    def put_file(self, path: str, data: bytes, mode: int = 0o644, timeout: float = 60.0) -> None:
        """Writes `data` to `path` in the guest (over the console: meant for scripts and
        small files, a few KiB a second under TCG)."""
        deadline = time.monotonic() + timeout
        quoted = shlex.quote(path)
        self.check(f": > {quoted}", timeout)
        encoded = base64.b64encode(data).decode()
        for i in range(0, len(encoded), 3072):
            chunk = encoded[i : i + 3072]
            self.check(f"echo {chunk} | base64 -d >> {quoted}", deadline - time.monotonic())
        self.check(f"chmod {mode:o} {quoted}", deadline - time.monotonic())

    def reboot(self, timeout: float = 120.0, *, force: bool = True) -> float:
        """Reboots the guest from inside and waits until it is up again; returns the seconds
        that took. QEMU keeps running, so a device backend sees the guest reset its devices.
        `force` runs `reboot -f` (straight to the kernel); otherwise `reboot`, which goes
        through /init's SIGTERM trap."""
        self._require_ready()
        deadline = time.monotonic() + timeout
        if self._stale is not None:
            self._wait(self._stale, self._boot_from, timeout, "an earlier command that timed out")
            self._stale = None
        with self._cond:
            start = len(self._console)
        self._ready = False
        self._boot_from = start
        self._started = time.monotonic()
        command = "reboot -f" if force else "reboot"
        self._send(f"r{next(self._seq)} {command}\n".encode(), deadline)
        return self.wait_ready(deadline - time.monotonic())

    def poweroff(self, timeout: float = 60.0) -> int:
        """Powers the guest off from inside (`poweroff -f`) and waits for QEMU to exit;
        returns QEMU's exit status."""
        self._require_ready()
        deadline = time.monotonic() + timeout
        self._ready = False
        self._send(f"p{next(self._seq)} poweroff -f\n".encode(), deadline)
        try:
            return self._proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise GuestTimeout(
                self._describe(f"QEMU did not exit within {timeout:g} s of poweroff")
            ) from None

    def close(self) -> None:
        """Kills QEMU (if still running) and releases everything. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        self._finalizer()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(timeout=10)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- internals -------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if self._closed:
            raise GuestError(f"guest {self.name} is closed")
        if not self._ready:
            raise GuestError(f"guest {self.name} is not ready: call wait_ready() first")

    def _pump(self, stream: IO[bytes], is_console: bool) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    if is_console:
                        self._eof = True
                    self._cond.notify_all()
                    return
                if is_console:
                    self._console += chunk
                    if self._log is not None:
                        self._log.write(chunk)
                        self._log.flush()
                else:
                    self._stderr += chunk
                self._cond.notify_all()

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(self._describe("the guest stopped reading its console"))
            _, writable, _ = select.select([], [self._stdin_fd], [], min(remaining, 1.0))
            if not writable:
                continue
            try:
                n = os.write(self._stdin_fd, view)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise GuestError(self._describe("QEMU closed its console input")) from None
            view = view[n:]

    def _wait(
        self, pattern: re.Pattern[bytes], start: int, timeout: float, what: str
    ) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        scan = start
        panicked: float | None = None
        with self._cond:
            while True:
                match = pattern.search(self._console, scan)
                if match is not None:
                    return match
                if panicked is None and _PANIC.search(self._console, scan):
                    panicked = time.monotonic()
                # Markers are short: the next search need only look at the new bytes and a
                # marker's length before them.
                scan = max(start, len(self._console) - 256)
                if panicked is not None and (
                    _PANIC_END.search(self._console, start) or time.monotonic() - panicked > 3
                ):
                    raise GuestError(self._describe(f"the guest panicked while waiting for {what}"))
                if self._eof:
                    # Let QEMU's exit status and last words arrive.
                    self._cond.release()
                    try:
                        self._proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                    for t in self._threads:
                        t.join(timeout=5)
                    self._cond.acquire()
                    raise GuestError(
                        self._describe(
                            f"QEMU exited ({self._proc.returncode}) while waiting for {what}"
                        )
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GuestTimeout(
                        self._describe(f"timed out after {timeout:g} s waiting for {what}")
                    )
                self._cond.wait(min(remaining, 0.5 if panicked is not None else 1.0))

    def _describe(self, problem: str) -> str:
        with self._cond:
            console = self._console.decode("utf-8", "replace")
            stderr = self._stderr.decode("utf-8", "replace")
        if len(console) > _QUOTE_LIMIT:
            console = (
                f"[... {len(console) - _QUOTE_LIMIT} characters before ...]\n"
                + console[-_QUOTE_LIMIT:]
            )
        parts = [f"guest {self.name}: {problem}", f"--- console ---\n{console}"]
        if stderr:
            parts.append(f"--- QEMU stderr ---\n{stderr}")
        parts.append(f"--- QEMU command ---\n{shlex.join(self.argv)}")
        return "\n".join(parts)
