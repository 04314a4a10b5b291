"""Unprivileged use: a privileged helper prepares, an unprivileged worker uses.

Loading an XDP program needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; creating an AF_XDP socket needs
CAP_NET_RAW. Setting a socket up and using it needs none of them, only enough locked
memory (RLIMIT_MEMLOCK) for its UMEM. So, as QEMU's ``sock-fds`` does:

1. the helper (root) attaches the default program, creates one AF_XDP socket per queue,
   puts each in the program's XSKMAP, and passes the sockets, the program's BPF link
   and its XSKMAP to the worker over a Unix socket (SCM_RIGHTS);
2. the worker (no capabilities) registers its own UMEM on each socket, binds it, and
   receives and sends.

The program stays attached exactly as long as someone holds its link: the helper can
exit right after the hand-over, and the program leaves the interface when the worker's
last socket closes or the worker dies.

Helper::

    afxdp_rs.privileged.serve("/run/afxdp.sock", "eth0", queues=2)   # or:
    # python -m afxdp_rs helper eth0 --socket /run/afxdp.sock --queues 2

Worker::

    handover = afxdp_rs.privileged.receive("/run/afxdp.sock")
    sockets = handover.open_sockets(frame_count=1024)
"""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from typing import Any

from afxdp_rs._afxdp import XdpProgram, XskSocket, queue_range
from afxdp_rs.errors import BusyError, ConfigError, XdpOSError
from afxdp_rs.types import XdpMode

__all__ = ["Handover", "Prepared", "prepare", "receive", "send_handover", "serve"]

AF_XDP = 44
_MAGIC = "afxdp_rs-handover-1"


@dataclasses.dataclass
class Prepared:
    """What the helper made: the attached program and one socket per queue."""

    program: XdpProgram
    ifname: str
    queues: list[int]
    sockets: list[socket.socket]

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.program.close()


def prepare(ifname: str, queues: int = 1, start_queue: int = 0, mode: XdpMode = "auto") -> Prepared:
    """Attaches the default program to ``ifname`` and creates one AF_XDP socket per
    queue, already in the program's XSKMAP (needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN,
    CAP_NET_RAW)."""
    ids = queue_range(ifname, queues, start_queue)
    program = XdpProgram(ifname, mode)
    sockets: list[socket.socket] = []
    try:
        for q in ids:
            s = socket.socket(AF_XDP, socket.SOCK_RAW)
            sockets.append(s)
            program.register(q, s.fileno())
    except BaseException:
        for s in sockets:
            s.close()
        program.close()
        raise
    return Prepared(program, ifname, ids, sockets)


def send_handover(conn: socket.socket, prepared: Prepared) -> None:
    """Sends the sockets, link and XSKMAP of ``prepared`` over a connected Unix socket."""
    header = {
        "magic": _MAGIC,
        "ifname": prepared.ifname,
        "queues": prepared.queues,
        "mode": prepared.program.mode,
        "prog_id": prepared.program.prog_id,
    }
    fds = [prepared.program.link_fd, prepared.program.xsks_map_fd]
    fds += [s.fileno() for s in prepared.sockets]
    socket.send_fds(conn, [json.dumps(header).encode()], fds)


def claim_socket_path(path: str) -> None:
    """Makes sure a Unix socket can be created at `path` without destroying anything:
    its directory exists, and nothing is there but a stale socket (nobody listens on
    it: a leftover of a process that was killed), which is removed. Anything else at
    the path is left alone: a file or directory (ConfigError), or a socket something
    listens on (BusyError)."""
    if not os.path.basename(path):
        raise ConfigError(f"socket path {path!r} names no file: give a path like /run/afxdp.sock")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ConfigError(
            f"socket path {path!r}: directory {directory} does not exist; create it first"
        )
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"socket path {path!r} exists and is not a socket: choose another path "
            "(nothing is deleted for you)"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # nobody listens: stale
            return
    raise BusyError(
        f"socket path {path!r} is in use: something listens there; stop it or choose another path"
    )


def serve(
    path: str,
    ifname: str,
    queues: int = 1,
    start_queue: int = 0,
    mode: XdpMode = "auto",
    *,
    timeout: float | None = None,
    socket_mode: int = 0o600,
    socket_group: str | int | None = None,
    stopped: Callable[[], bool] | None = None,
) -> bool:
    """Prepares the sockets, waits for one worker to connect on the Unix socket
    ``path`` (created here, removed afterwards), hands everything over, and returns
    True. The program stays attached while the worker holds what it received. With
    ``stopped``, asked a few times a second while waiting: returns False, having handed
    nothing over, once it answers true.

    Nothing that is at ``path`` is replaced: only a stale socket (nobody listens) is
    removed first; anything else fails (see :func:`claim_socket_path`).

    Whoever can connect to ``path`` gets the sockets: it is created with
    ``socket_mode`` (0600 by default: only this user, e.g. a worker that dropped its
    capabilities) and, with ``socket_group``, owned by that group (then e.g. 0660 lets
    the group's members in)."""
    if not 0 <= socket_mode <= 0o777:
        raise ConfigError(f"socket_mode={socket_mode:#o}: use permission bits, e.g. 0o600")
    gid = -1
    if socket_group is not None:
        try:
            gid = (
                socket_group if isinstance(socket_group, int) else grp.getgrnam(socket_group).gr_gid
            )
        except KeyError:
            raise ConfigError(
                f"socket_group={socket_group!r}: no such group (see getent group)"
            ) from None
    claim_socket_path(path)
    prepared = prepare(ifname, queues, start_queue, mode)
    try:
        placed: os.stat_result | None = None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            # Nobody else may connect before the permissions are set: bind inside a
            # private (0700) directory next to the path, set them, then link the
            # socket into place (no process-wide umask change, which other threads
            # would see; a link never replaces what appeared there meanwhile). It
            # listens before it appears at the path: a worker that sees the path can
            # connect at once.
            private = tempfile.mkdtemp(prefix=".afxdp-", dir=os.path.dirname(path) or ".")
            try:
                staged = os.path.join(private, "socket")
                listener.bind(staged)
                if gid != -1:
                    os.chown(staged, -1, gid)
                os.chmod(staged, socket_mode)
                listener.listen(1)
                try:
                    os.link(staged, path)
                    placed = os.lstat(staged)
                except FileExistsError:
                    raise BusyError(
                        f"socket path {path!r} was taken while the helper started: "
                        "nothing is replaced; choose another path"
                    ) from None
            finally:
                if os.path.exists(os.path.join(private, "socket")):
                    os.unlink(os.path.join(private, "socket"))
                os.rmdir(private)
            try:
                deadline = None if timeout is None else time.monotonic() + timeout
                while True:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"no worker connected to {path} within {timeout} s")
                    if stopped is not None and stopped():
                        return False
                    listener.settimeout(0.2 if left is None else min(left, 0.2))
                    try:
                        conn, _ = listener.accept()
                        break
                    except TimeoutError:
                        continue
                with conn:
                    conn.settimeout(None)
                    send_handover(conn, prepared)
                return True
            finally:
                _unlink_if_ours(path, placed)
    finally:
        prepared.close()


def _unlink_if_ours(path: str, ours: os.stat_result | None) -> None:
    """Removes `path` if it is still the socket file the helper put there."""
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        return
    if ours is not None and (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino):
        os.unlink(path)


@dataclasses.dataclass
class Handover:
    """What the worker received: open descriptors it now owns."""

    ifname: str
    queues: list[int]
    mode: str
    prog_id: int
    link_fd: int
    xsks_map_fd: int
    sock_fds: list[int]

    def open_sockets(self, **options: Any) -> list[XskSocket]:
        """An :class:`XskSocket` on each handed-over socket (``options`` as for
        XskSocket: frame_count, ring sizes, ...). Each socket keeps the program's link
        open, so the program stays attached until the last of them closes. On success
        the descriptors of this handover are closed (the sockets hold duplicates); on
        failure they stay open, so the call can be retried with other options."""
        sockets: list[XskSocket] = []
        try:
            for q, fd in zip(self.queues, self.sock_fds, strict=True):
                sockets.append(
                    XskSocket(
                        self.ifname,
                        q,
                        inhibit=True,
                        sock_fd=fd,
                        hold_fds=[self.link_fd],
                        **options,
                    )
                )
        except BaseException:
            for s in sockets:
                s.close()
            raise
        self.close()
        return sockets

    def close(self) -> None:
        """Closes the received descriptors (sockets made from them keep their own)."""
        for fd in [self.link_fd, self.xsks_map_fd, *self.sock_fds]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.sock_fds = []


def receive(path: str, timeout: float | None = 10.0) -> Handover:
    """Connects to a helper's Unix socket at ``path`` and takes what it hands over."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 2 + 256)
    try:
        header = json.loads(msg)
        if header.get("magic") != _MAGIC:
            raise ValueError("wrong magic")
        queues = [int(q) for q in header["queues"]]
        if len(fds) != 2 + len(queues):
            raise ValueError(f"expected {2 + len(queues)} descriptors, got {len(fds)}")
    except (ValueError, KeyError, TypeError) as e:
        for fd in fds:
            os.close(fd)
        raise XdpOSError(
            f"{path} did not send an afxdp_rs hand-over ({e}): is an afxdp_rs helper serving there?"
        ) from None
    return Handover(
        ifname=str(header["ifname"]),
        queues=queues,
        mode=str(header["mode"]),
        prog_id=int(header["prog_id"]),
        link_fd=fds[0],
        xsks_map_fd=fds[1],
        sock_fds=list(fds[2:]),
    )
