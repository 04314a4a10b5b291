"""The guest's NICs and kernel, for the tests of the guest tier."""

from __future__ import annotations

import subprocess
import time

from conftest import kernel

__all__ = ["NICS", "carrier", "kernel", "up"]

NICS = ("eth0", "eth1", "eth2", "eth3")


def carrier(nic: str) -> bool:
    try:
        with open(f"/sys/class/net/{nic}/carrier") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def up(*nics: str, mtu: int | None = None) -> None:
    """Sets the NICs up (and their MTU) and waits for carrier (6.1 and 6.12 report
    NO-CARRIER for a moment after `up`)."""
    for n in nics:
        args = ["ip", "link", "set", "dev", n]
        if mtu is not None:
            args += ["mtu", str(mtu)]
        subprocess.run([*args, "up"], check=True)
    deadline = time.monotonic() + 30
    while not all(carrier(n) for n in nics):
        assert time.monotonic() < deadline, f"no carrier on {nics}"
        time.sleep(0.05)
