"""Request values in log lines are escaped, and anonymous rejections are sampled so that nobody can flood the logs."""

from __future__ import annotations

import pytest

from connector.app.logsafe import LogSampler, untrusted


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("01e8f81b-3060-4dec-acf0-0389665a0a38", "01e8f81b-3060-4dec-acf0-0389665a0a38"),
        ("x\nWARNING forged line", "x\\nWARNING forged line"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("line\u2028separator", "line\\u2028separator"),
        ("back\\nslash", "back\\\\nslash"),  # a literal backslash cannot pass for an escape
        ("café", "café"),
    ],
)
def test_untrusted_values_are_escaped_onto_one_line(value, logged):
    assert untrusted(value) == logged


def test_untrusted_values_are_clipped():
    assert untrusted("a" * 500, limit=10) == "aaaaaaaaaa…(+490 characters)"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_sampler_admits_a_few_lines_per_window_then_says_how_many_it_held_back():
    clock = Clock()
    sampler = LogSampler(per_window=3, window=60.0, clock=clock)
    assert [sampler.admit() for _ in range(5)] == [0, 0, 0, None, None]
    clock.now = 59.9
    assert sampler.admit() is None
    clock.now = 60.0
    assert [sampler.admit() for _ in range(4)] == [3, 0, 0, None]
