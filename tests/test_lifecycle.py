"""The batch lifecycle under random sequences of calls (hypothesis): every frame is in
exactly one place at every step, and no view ever reads a frame that went back to the
kernel."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel

FRAMES = 64


def test_batch_lifecycle(bed: VethTestbed) -> None:
    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.sock = afxdp_rs.XskSocket(
                bed.inner,
                0,
                frame_count=FRAMES,
                fill_size=32,
                rx_size=32,
                tx_size=16,
                comp_size=16,
            )
            self.peer = bed.packet_socket(bed.peer)
            self.peer.setblocking(False)
            self.seq = 0
            # Held batches, with the bytes each frame had when received.
            self.held: list[tuple[afxdp_rs.RxBatch, list[bytes]]] = []
            self.views: list[tuple[memoryview, bytes, afxdp_rs.RxBatch]] = []
            self.released: list[afxdp_rs.RxBatch] = []

        def teardown(self) -> None:
            for v, _, _ in self.views:
                v.release()
            self.sock.close()
            self.peer.close()

        @rule(n=st.integers(1, 40))
        def peer_sends(self, n: int) -> None:
            for _ in range(n):
                self.peer.send(bed.frame(self.seq, 60 + self.seq % 100))
                self.seq += 1

        @rule(n=st.integers(1, 40))
        def socket_sends(self, n: int) -> None:
            self.sock.send([bed.frame(i, 64, to_inner=False) for i in range(n)], timeout=0)
            try:
                while self.peer.recv(4096):
                    pass
            except BlockingIOError:
                pass

        @rule(m=st.integers(1, 40))
        def receive(self, m: int) -> None:
            batch = self.sock.recv(m, timeout=0)
            self.held.append((batch, batch.to_list()))

        @precondition(lambda self: self.held)
        @rule(i=st.integers(0, 100), j=st.integers(0, 100))
        def take_view(self, i: int, j: int) -> None:
            batch, data = self.held[i % len(self.held)]
            if len(batch):
                k = j % len(batch)
                self.views.append((memoryview(batch[k]), data[k], batch))

        @precondition(lambda self: self.views)
        @rule(i=st.integers(0, 100))
        def drop_view(self, i: int) -> None:
            view, _, _ = self.views.pop(i % len(self.views))
            view.release()

        @precondition(lambda self: self.held)
        @rule(i=st.integers(0, 100))
        def release(self, i: int) -> None:
            batch, _ = self.held[i % len(self.held)]
            viewed = any(b is batch for _, _, b in self.views)
            if viewed:
                with pytest.raises(afxdp_rs.BatchInUseError):
                    batch.release()
                return
            batch.release()
            self.held.pop(i % len(self.held))
            self.released.append(batch)

        @invariant()
        def frames_are_in_exactly_one_place(self) -> None:
            s = self.sock.statistics()
            parts = s["free_frames"] + s["tx_outstanding"] + s["rx_held"] + s["rx_in_kernel"]
            assert parts == s["frame_count"] == FRAMES, s
            assert s["rx_held"] == sum(len(b) for b, _ in self.held), s
            assert s["invalid_returns"] == s["invalid_completions"] == 0, s

        @invariant()
        def views_see_their_packet(self) -> None:
            for view, data, _ in self.views:
                assert bytes(view) == data

        @invariant()
        def released_batches_are_unreadable(self) -> None:
            for batch in self.released[-5:]:
                if len(batch):
                    with pytest.raises(afxdp_rs.BatchReleasedError):
                        bytes(batch[0])

    settings_ = settings(
        max_examples=25,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Lifecycle.TestCase.settings = settings_
    Lifecycle.TestCase().runTest()
