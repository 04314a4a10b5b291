"""Shared fixtures: every test here talks to the real kernel on a veth test bed."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import afxdp_rs
from afxdp_rs import privileged
from afxdp_rs.testbed import VethTestbed

# The guest tier's own suite runs inside the guests tests/test_guest_tier.py boots, not
# on the host.
collect_ignore = [] if os.environ.get("AFXDP_IN_GUEST") else ["in_guest"]

# AF_XDP sockets, XDP programs and network namespaces need root (CAP_NET_ADMIN,
# CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN). CI runs as root and sets AFXDP_REQUIRE_ROOT=1,
# so there a missing privilege fails the run instead of skipping tests.
NEEDS_ROOT = (
    "needs root: AF_XDP sockets, XDP programs and network namespaces need "
    "CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run the tests with sudo)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("AFXDP_REQUIRE_ROOT") == "1":
        raise pytest.UsageError(NEEDS_ROOT + "; AFXDP_REQUIRE_ROOT=1 forbids skipping")
    skip = pytest.mark.skip(reason=NEEDS_ROOT)
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel: talks to the real kernel (needs root)")
    config.addinivalue_line(
        "markers", "bed(queues=1, veths=()): the shape of the module's veth test bed"
    )


def kernel() -> tuple[int, int]:
    """The running kernel's version, (major, minor)."""
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    assert m, platform.release()
    return int(m.group(1)), int(m.group(2))


def require_tool(name: str, why: str) -> str:
    """The path of a program a test needs: skipped where it is missing, but a failure in
    CI (AFXDP_REQUIRE_ROOT=1), where setup installs everything."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("AFXDP_REQUIRE_ROOT") == "1":
            pytest.fail(f"{name} is not installed (scripts/setup.sh installs it)")
        pytest.skip(f"needs {name} {why}")
    return path


def without_privileges(memlock: int) -> list[str]:
    """A command prefix that runs a program with no capability at all and `memlock`
    bytes of RLIMIT_MEMLOCK (as root, whose home the interpreter lives in)."""
    return [
        "prlimit",
        f"--memlock={memlock}:{memlock}",
        "setpriv",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


# poll, select, epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2 (x86_64): a
# thread blocked in one of them is waiting for something to arrive.
WAITING = {7, 23, 232, 270, 271, 281, 441}


def waiting(pid: int) -> bool:
    """Whether a thread of process `pid` is blocked waiting for input."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/syscall") as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        if nr.isdigit() and int(nr) in WAITING:
            return True
    return False


def wait_ready(proc: subprocess.Popen[str] | int, *ifnames: str) -> None:
    """Waits until a program under test (an example, a command; or, given this process's
    pid, a command run in another thread) has attached on every one of `ifnames` and
    then blocks waiting for packets: its sockets are open (registered after the program
    attached), so every packet sent from now on reaches them. No fixed delay; the bound
    is only against a hang."""
    pid = proc if isinstance(proc, int) else proc.pid

    def ready() -> bool:
        if not isinstance(proc, int):
            assert proc.poll() is None, f"it ended early: {proc.communicate()}"
        attached = all(afxdp_rs.interface_info(i)["xdp_prog_id"] for i in ifnames)
        return attached and waiting(pid)

    eventually(ready, f"ready on {ifnames}", bound=120.0)


def eventually(
    cond: Callable[[], bool], what: str, bound: float = 60.0, every: float = 0.01
) -> None:
    """Looks at `cond()` every `every` seconds until it holds (the kernel or another
    process finishing something); the bound is only against a hang, so a slow machine
    does not fail it. `cond` may raise to say waiting is pointless (its process died)."""
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {bound:.0f} s"
        time.sleep(every)


def start_helper(path: str, ifname: str, queues: int, start_queue: int = 0) -> threading.Thread:
    """Runs the privileged helper in a thread and waits until it listens on `path`."""
    helper = threading.Thread(
        target=privileged.serve,
        args=(path, ifname, queues, start_queue, "native"),
        kwargs={"timeout": 20},
    )
    helper.start()

    # Preparing (program, sockets) takes long on a loaded machine: wait for the path
    # as long as the helper lives, with a bound only against a hang.
    def listening() -> bool:
        assert helper.is_alive(), f"the helper ended before it listened on {path}"
        return os.path.exists(path)

    eventually(listening, f"the helper listening on {path}", bound=120.0)
    return helper


@pytest.fixture(scope="module")
def bed(request: pytest.FixtureRequest) -> Iterator[VethTestbed]:
    """One veth pair in a fresh named namespace per test module, removed afterwards.

    A module shapes it with ``pytestmark = pytest.mark.bed(queues=N, veths=[(a, b)])``:
    N rx and tx queues on each end (default 1), and more veth pairs in the namespace.
    """
    marker = request.node.get_closest_marker("bed")
    options = marker.kwargs if marker is not None else {}
    with VethTestbed(queues=options.get("queues", 1)) as tb:
        for name, peer in options.get("veths", ()):
            tb.add_veth(name, peer)
        yield tb
