"""A virtual machine's network over AF_XDP: a vhost-user-net backend.

:class:`VhostUser` serves a virtio-net device on a Unix socket; QEMU (or another
vhost-user frontend) connects to it, and the guest's packets go out of a host
interface through AF_XDP sockets, one per queue pair (pair ``i`` on queue
``start_queue + i``), while the packets the interface receives on those queues go to
the guest. It runs in Rust threads, serving one frontend after another (a guest
reboot, a QEMU restarted with ``reconnect=1``) until :meth:`VhostUser.stop`::

    from afxdp_rs.vhost import VhostUser, qemu_args

    with VhostUser("eth0", "/run/vm0.sock", queues=2) as dev:
        print(" ".join(qemu_args("/run/vm0.sock", queues=2, memory="2G")))
        dev.wait_connected()
        ...
        print(dev.statistics())

The guest is offered no checksum offload: it computes its checksums, and packets from
a local stack that left theirs to the hardware are completed before the guest sees
them. Nothing is dropped silently: :meth:`VhostUser.statistics` counts every packet
refused and the kernel counters of each socket.
"""

from __future__ import annotations

import os

from afxdp_rs._afxdp import VhostUser

__all__ = ["VhostUser", "qemu_args"]


def qemu_args(
    socket_path: str | os.PathLike[str],
    *,
    queues: int = 1,
    memory: str | None = "1G",
    mac: str | None = None,
    client: bool = False,
    kvm: bool = True,
) -> list[str]:
    """The QEMU arguments for a guest NIC served by a :class:`VhostUser` on
    `socket_path`: guest memory shared (a vhost-user backend maps it), the socket,
    the netdev and a virtio-net-pci device with `queues` queue pairs.

    `memory` is the guest's RAM size (QEMU's ``-m``); None leaves the shared memory
    to the caller. `client=True` when the backend connects (``VhostUser(..., client=True)``): QEMU
    then listens. Otherwise QEMU connects, and reconnects after a restart of the
    backend. `kvm=False` for a guest under TCG: QEMU 7.2 crashes when a vhost-user
    device uses MSI-X without KVM, so the device gets ``vectors=0`` (legacy
    interrupts)."""
    if queues < 1:
        raise ValueError(f"queues={queues}: a NIC has at least one queue pair")
    path = os.fspath(socket_path)
    chardev = f"socket,id=vu0,path={path}" + (",server=on,wait=off" if client else ",reconnect=1")
    netdev = "vhost-user,id=vunet0,chardev=vu0" + (f",queues={queues}" if queues > 1 else "")
    device = "virtio-net-pci,netdev=vunet0"
    if mac is not None:
        device += f",mac={mac}"
    if queues > 1:
        device += ",mq=on"
    if not kvm:
        device += ",vectors=0"
    elif queues > 1:
        device += f",vectors={2 * queues + 2}"
    shared = (
        []
        if memory is None
        else [
            "-object",
            f"memory-backend-memfd,id=vumem0,size={memory},share=on",
            "-numa",
            "node,memdev=vumem0",
        ]
    )
    return [*shared, "-chardev", chardev, "-netdev", netdev, "-device", device]
