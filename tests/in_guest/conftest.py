"""The guest tier: tests that run inside a guest booted by scripts/guest-run (a Debian
kernel, the host's userspace, four virtio-net NICs: eth0 <-> eth1 on one QEMU hub,
eth2 <-> eth3 on another). tests/test_guest_tier.py boots the guests and runs this
suite in each; outside a guest it is not collected (see tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from .guestnet import NICS, up


@pytest.fixture(scope="session", autouse=True)
def nics() -> Iterator[None]:
    if not os.environ.get("AFXDP_IN_GUEST"):
        pytest.fail("the guest tier runs in a guest: tests/test_guest_tier.py boots it")
    subprocess.run(["modprobe", "virtio_net"], check=True)
    deadline = time.monotonic() + 30
    while not all(os.path.exists(f"/sys/class/net/{n}") for n in NICS):
        assert time.monotonic() < deadline, "the virtio NICs did not appear"
        time.sleep(0.05)
    up(*NICS)
    yield


@pytest.fixture
def mtu1500() -> Iterator[None]:
    yield
    up("eth0", "eth1", mtu=1500)
