"""``Slots``: a server's ``max_concurrency`` calls, taken without a coroutine when one is free."""

from __future__ import annotations

import asyncio

from mcp_hangar.admission import Slots


async def test_free_slots_are_taken_at_once_and_the_rest_wait_in_order() -> None:
    slots = Slots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await slots.wait()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)  # let them queue
    assert order == [] and slots.free == 0
    slots.give()
    await asyncio.wait_for(tasks[0], 1)
    assert order == [0] and not slots.take_now()  # the slot went to the first waiter, not to a newcomer
    slots.give()
    slots.give()
    await asyncio.wait_for(asyncio.gather(*tasks[1:]), 1)
    assert order == [0, 1, 2] and slots.free == 0
    slots.give()
    slots.give()  # the last two holders are done
    assert slots.free == 2


async def test_a_cancelled_waiter_loses_nothing() -> None:
    slots = Slots(1)
    assert slots.take_now()
    first = asyncio.create_task(slots.wait())
    second = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    first.cancel()  # cancelled while waiting: leaves the queue
    await asyncio.gather(first, return_exceptions=True)
    slots.give()
    await asyncio.wait_for(second, 1)
    # A waiter handed the slot in the same step as it is cancelled passes it on.
    third = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.give()  # second is done: resolves third's future...
    third.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(third, return_exceptions=True)
    assert third.cancelled()
    assert slots.free == 1 and slots.take_now() and not slots.take_now()
