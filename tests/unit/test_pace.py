"""One fleet, one pace (issue 13): a registration's requests after a 429, learned and shared, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.app.pacing import Held, Pacer
from connector.domain.pace import BACK_OFF, Pace
from tests.unit.fakes import Clock

T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
REG = "reg-a"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def busy(pace: Pace, per_second: int, seconds: int) -> None:
    """The pace lets requests through and Graph accepts them, per_second of them each second."""
    for second in range(seconds):
        for n in range(per_second):
            assert pace.wait(at(second + n / per_second)) == 0
            pace.succeeded(at(second + n / per_second))


def test_no_limit_until_graph_refuses():
    pace = Pace()
    busy(pace, 100, 3)
    assert pace.rate is None


def test_a_429_when_busy_holds_then_lets_requests_back_gradually_a_little_below_the_accepted_rate():
    pace = Pace()
    busy(pace, 20, 5)
    until = pace.throttled(at(5), retry_after_seconds=2)
    assert until == at(7)
    assert pace.rate == pytest.approx(BACK_OFF * 20, rel=0.05)
    assert pace.wait(at(6)) == pytest.approx(1.0)  # held: nothing goes until the wait is over
    assert pace.wait(at(7)) > 0  # and then not all at once: the bucket starts empty
    sent = sum(1 for tick in range(1, 101) if pace.wait(at(7 + tick / 100)) == 0)
    assert sent == pytest.approx(BACK_OFF * 20, abs=2)  # about one second's worth at the learned rate


def test_a_429_on_a_quiet_instance_holds_but_learns_no_rate():
    pace = Pace()
    pace.succeeded(at(0))
    pace.throttled(at(1), retry_after_seconds=60)
    assert pace.rate is None
    assert pace.wait(at(30)) == pytest.approx(31)
    assert pace.wait(at(61)) == 0


def test_the_rate_creeps_up_while_graph_accepts_everything():
    pace = Pace()
    busy(pace, 20, 5)
    pace.throttled(at(5), retry_after_seconds=0)
    learned = pace.rate
    assert learned is not None
    for second in range(6, 66):
        pace.succeeded(at(second))
    assert pace.rate is not None
    assert learned < pace.rate < learned * 1.3


class _Store:
    def __init__(self) -> None:
        self.holds: dict[str, datetime] = {}
        self.reads = 0

    async def not_before(self, registration_id: str) -> datetime | None:
        self.reads += 1
        return self.holds.get(registration_id)

    async def hold(self, registration_id: str, until: datetime) -> None:
        if registration_id not in self.holds or until > self.holds[registration_id]:
            self.holds[registration_id] = until


async def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"no wait expected ({seconds} s)")


async def test_a_hold_learned_by_one_instance_holds_the_others():
    store, clock = _Store(), Clock(T0)
    first, second = Pacer(store, clock, sleep=_no_sleep), Pacer(store, clock, sleep=_no_sleep)
    await second.before(REG)  # the other instance is running, its view of the hold is fresh
    await first.throttled(REG, retry_after_seconds=120)
    clock.advance(seconds=6)  # past the time an instance trusts what it read
    with pytest.raises(Held) as held:
        await second.before(REG)
    assert held.value.until == at(120)
    await second.before("reg-b")  # another registration is not held


async def test_the_shared_hold_is_read_at_most_once_per_ttl():
    store, clock = _Store(), Clock(T0)
    pacer = Pacer(store, clock, sleep=_no_sleep)
    for _ in range(50):
        await pacer.before(REG)
    assert store.reads == 1
    clock.advance(seconds=6)
    await pacer.before(REG)
    assert store.reads == 2


async def test_a_short_wait_is_waited_a_long_one_sends_the_message_back():
    store, clock = _Store(), Clock(T0)
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        clock.advance(seconds=seconds)

    pacer = Pacer(store, clock, sleep=sleep)
    await pacer.throttled(REG, retry_after_seconds=2)
    await pacer.before(REG)
    assert waited == [pytest.approx(2)]
    await pacer.throttled(REG, retry_after_seconds=300)
    with pytest.raises(Held) as held:
        await pacer.before(REG)
    assert 300 <= held.value.delay_seconds(clock()) <= 330  # spread out: they do not all come back at once
