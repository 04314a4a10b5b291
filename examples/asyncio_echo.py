"""An asyncio echo service: answer COUNT packets on IFNAME with source and destination
MAC addresses swapped.

    sudo python examples/asyncio_echo.py eth0 1000
"""

from __future__ import annotations

import asyncio
import sys

from afxdp_rs.aio import AsyncXskSocket


async def main(ifname: str, count: int) -> None:
    answered = 0
    async with AsyncXskSocket.open(ifname, 0) as sock:
        async for batch in sock:
            with batch:
                replies = [d[6:12] + d[0:6] + d[12:] for d in batch.to_list()]
            answered += await sock.send(replies)
            if answered >= count:
                break
        await sock.flush()
    print(f"answered {answered} packets")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
