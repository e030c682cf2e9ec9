"""`InflightLimit` by itself: admission, waiting, waking and refusing (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from seaweed_py.errors import TooManyRequests
from seaweed_py.httpkit import Request
from seaweed_py.httpkit.inflight import InflightLimit


def _rejection(in_flight: int, limit: int) -> TooManyRequests:
    return TooManyRequests(f"{in_flight} > {limit}")


def _upload(query: str = "") -> Request:
    return Request("PUT", "/3,01637037d6", query)


def test_admits_while_within_the_limit_checked_before_the_new_body() -> None:
    limit = InflightLimit(100, 1.0, _rejection)
    assert limit.admits(_upload())
    limit.add(100)
    assert limit.admits(_upload())  # 100 is not above 100: one more goes
    limit.add(1000)  # a body larger than the whole limit still got in
    assert not limit.admits(_upload())
    limit.release(1000)
    assert limit.admits(_upload()) and limit.in_flight == 100


def test_exempt_requests_are_admitted_past_the_limit() -> None:
    limit = InflightLimit(1, 1.0, _rejection, exempt=lambda r: "type=replicate" in r.query_string)
    limit.add(5)
    assert limit.admits(_upload("type=replicate")) and not limit.admits(_upload())


def test_a_release_wakes_the_waiters_and_a_full_wait_is_refused() -> None:
    async def scenario() -> None:
        limit = InflightLimit(10, 5.0, _rejection)
        limit.add(11)
        waiters = [asyncio.ensure_future(limit.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert limit.waiting == 3 and not any(w.done() for w in waiters)
        limit.release(11)
        await asyncio.gather(*waiters)
        assert limit.waiting == 0

        hurried = InflightLimit(10, 0.05, _rejection)
        hurried.add(20)
        with pytest.raises(TooManyRequests, match="20 > 10"):
            await hurried.wait()
        assert hurried.waiting == 0
        at_once = InflightLimit(10, 0.0, _rejection)
        at_once.add(20)
        with pytest.raises(TooManyRequests):
            await at_once.wait()

    asyncio.run(scenario())


@pytest.mark.parametrize(("size", "timeout"), [(0, 1.0), (-1, 1.0), (1, -0.5)])
def test_nonsense_settings_are_refused(size: int, timeout: float) -> None:
    with pytest.raises(ValueError):
        InflightLimit(size, timeout, _rejection)
