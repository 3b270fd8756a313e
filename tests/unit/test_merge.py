"""The merge rule: any order, any number of deliveries, the same state; progress never moves back."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.merge import MergedState, Stamp, fold, patch_body, remove

TIMES = [datetime(2026, 11, 26, 10, 0, i, tzinfo=UTC) for i in range(5)]
DATES = [f"2026-01-0{i}T00:00:00+00:00" for i in range(1, 6)]

events = st.builds(
    lambda status, pct, started, completed, notes, time, seq, n: (
        {
            k: v
            for k, v in {
                "status": status,
                "completionPercentage": pct,
                "startedDateTime": started,
                "completedDateTime": completed,
                "notes": notes,
            }.items()
            if v != "absent"
        },
        Stamp(time, seq, f"evt-{n}"),
    ),
    st.sampled_from(["notStarted", "inProgress", "completed"]),
    st.sampled_from(["absent", None, 0, 25, 50, 100]),
    st.sampled_from(["absent", None, *DATES]),
    st.sampled_from(["absent", None, *DATES]),
    st.sampled_from(["absent", None, {"content": "a", "contentType": "text"}, {"content": "b", "contentType": "html"}]),
    st.sampled_from(TIMES),
    st.integers(0, 2),
    st.integers(0, 10_000),
)


def fold_all(items):
    return reduce(_apply, items, MergedState())


def _apply(state, item):
    changes, stamp = item
    return remove(state, stamp) if changes == REMOVED else fold(state, changes, stamp)


REMOVED = "removed"
removals = st.builds(
    lambda time, n: (REMOVED, Stamp(time, 0, f"rm-{n}")), st.sampled_from(TIMES), st.integers(0, 10_000)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events | removals, min_size=1, max_size=8), st.randoms(use_true_random=False), st.data())
def test_any_order_and_any_number_of_deliveries_give_the_same_state(items, rnd, data):
    # Event ids are unique per event: a redelivery repeats an event, it does not invent a new one with its id.
    items = list({stamp.event_id: (changes, stamp) for changes, stamp in items}.values())
    expected = fold_all(items)
    replayed = items + [data.draw(st.sampled_from(items)) for _ in range(data.draw(st.integers(0, 5)))]
    rnd.shuffle(replayed)
    assert fold_all(replayed) == expected
    assert _apply(expected, items[0]) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(events | removals, min_size=1, max_size=8))
def test_the_state_is_the_merge_of_the_events_after_the_newest_removal(items):
    items = list({stamp.event_id: (changes, stamp) for changes, stamp in items}.values())
    newest_removal = max((stamp for changes, stamp in items if changes == REMOVED), default=None)
    after = [item for item in items if item[0] != REMOVED and (newest_removal is None or item[1] > newest_removal)]
    state = fold_all(items)
    assert state.values == fold_all(sorted(after, key=lambda item: item[1])).values
    assert state.exists == bool(after)


def test_a_removal_withdraws_and_only_a_newer_event_brings_the_activity_back():
    state = fold(MergedState(), {"status": "completed", "completionPercentage": 100}, Stamp(TIMES[1]))
    state = remove(state, Stamp(TIMES[2]))
    assert (state.exists, state.values) == (False, {})
    assert fold(state, {"status": "inProgress", "completionPercentage": 40}, Stamp(TIMES[0])) == state
    again = fold(state, {"status": "notStarted"}, Stamp(TIMES[3]))
    assert (again.exists, again.values) == (True, {"status": "notStarted"})  # a new life: nothing carried over


def test_a_late_removal_keeps_what_newer_events_said():
    state = fold(MergedState(), {"status": "completed", "completionPercentage": 100}, Stamp(TIMES[0]))
    state = fold(state, {"status": "inProgress", "completionPercentage": 10}, Stamp(TIMES[3]))
    assert state.values["completionPercentage"] == 100
    state = remove(state, Stamp(TIMES[1]))  # arrives last, but happened between them
    assert state.values == {"status": "inProgress", "completionPercentage": 10}
    assert state.exists


def test_a_state_written_before_candidates_were_kept_is_read():
    stamp = ["2026-11-26T10:00:00.000000Z", 1, "e"]
    old = {"values": {"status": "inProgress", "notes": None}, "stamps": {"notes": stamp}}
    state = MergedState.from_json(old)
    assert state.values == {"status": "inProgress", "notes": None}
    assert state.exists
    newer = fold(state, {"status": "inProgress", "notes": {"content": "n", "contentType": "text"}}, Stamp(TIMES[1]))
    assert newer.values["notes"] == {"content": "n", "contentType": "text"}


def test_an_old_progress_event_after_completion_changes_nothing():
    completed = fold(
        MergedState(),
        {"status": "completed", "completionPercentage": 100, "completedDateTime": "2026-01-05T00:00:00+00:00"},
        Stamp(TIMES[4]),
    )
    late_progress = {"status": "inProgress", "completionPercentage": 40, "completedDateTime": None}
    late = fold(completed, late_progress, Stamp(TIMES[0]))
    assert late == completed
    assert late.values == {
        "status": "completed",
        "completionPercentage": 100,
        "completedDateTime": "2026-01-05T00:00:00+00:00",
    }


def test_started_keeps_the_earliest_and_completed_comes_with_the_completing_event():
    state = fold(MergedState(), {"status": "inProgress", "startedDateTime": DATES[2]}, Stamp(TIMES[0]))
    state = fold(
        state, {"status": "inProgress", "startedDateTime": DATES[1], "completedDateTime": DATES[4]}, Stamp(TIMES[1])
    )
    assert state.values == {"status": "inProgress", "startedDateTime": DATES[1]}
    state = fold(state, {"status": "completed", "completedDateTime": DATES[3]}, Stamp(TIMES[2]))
    assert state.values["completedDateTime"] == DATES[3]


def test_latest_wins_fields_follow_the_newest_event_including_an_explicit_null():
    newer, older = Stamp(TIMES[3]), Stamp(TIMES[1])
    state = fold(MergedState(), {"status": "inProgress", "notes": None}, newer)
    state = fold(state, {"status": "inProgress", "notes": {"content": "old", "contentType": "text"}}, older)
    assert state.values["notes"] is None


def test_the_batch_position_orders_events_with_the_same_timestamp():
    first, second = Stamp(TIMES[0], 0, "w:0"), Stamp(TIMES[0], 1, "w:1")
    due_1 = {"dateTime": "2026-12-01T00:00:00.0000000", "timeZone": "UTC"}
    due_2 = {"dateTime": "2026-12-24T00:00:00.0000000", "timeZone": "UTC"}
    for order in ([(due_1, first), (due_2, second)], [(due_2, second), (due_1, first)]):
        state = MergedState()
        for due, stamp in order:
            state = fold(state, {"status": "notStarted", "dueDateTime": due}, stamp)
        assert state.values["dueDateTime"] == due_2


def test_patch_body_sends_the_whole_merged_state_plus_the_events_own_nulls():
    merged = fold(MergedState(), {"status": "inProgress", "completionPercentage": 20}, Stamp(TIMES[0]))
    merged = fold(merged, {"status": "inProgress", "notes": None}, Stamp(TIMES[1]))
    assert patch_body(merged, {"status": "inProgress", "completedDateTime": None, "completionPercentage": 5}) == {
        "status": "inProgress",
        "completionPercentage": 20,
        "notes": None,
        "completedDateTime": None,
    }


def test_merged_state_round_trips_through_json():
    state = fold(MergedState(), {"status": "inProgress", "notes": None}, Stamp(TIMES[0], 2, "e"))
    assert MergedState.from_json(state.to_json()) == state


def test_stamps_compare_as_instants_whatever_text_they_were_written_in():
    """The Functions host rewrites `…:31.000000Z` as `…:31Z` in queued JSON; the order must not change."""
    written = Stamp.from_json(["2026-11-26T10:00:31.000000Z", 0, "a"])
    rewritten = Stamp.from_json(["2026-11-26T10:00:31Z", 0, "a"])
    offset = Stamp.from_json(["2026-11-26T11:00:31+01:00", 0, "a"])
    assert written == rewritten == offset
    assert Stamp.from_json(["2026-11-26T10:00:31Z", 0, "b"]) > written
    assert Stamp.from_json(["2026-11-26T10:00:30.999999Z", 9, "z"]) < rewritten


@settings(max_examples=200, deadline=None)
@given(st.lists(events | removals, max_size=6), st.lists(events | removals, max_size=6))
def test_combining_two_states_equals_folding_all_their_callbacks(first, second):
    from connector.domain.merge import combine

    items = list({stamp.event_id: (changes, stamp) for changes, stamp in first + second}.values())
    a = [i for i in items if i in first]
    b = [i for i in items if i not in a]
    assert combine(fold_all(a), fold_all(b)) == fold_all(items)
    assert combine(fold_all(a), fold_all(b)) == combine(fold_all(b), fold_all(a))
