import datetime
import json

import pytest

from runwright import JSONResultHandler
from runwright.engine import state as st
from runwright.engine.result import NoResult, Result, SafeResult
from runwright.engine.serialization import SerializationError


def test_predicates_follow_the_class_hierarchy():
    assert st.Retrying().is_pending() and st.Retrying().is_scheduled() and st.Retrying().is_retrying()
    assert st.Cached().is_successful() and st.Cached().is_finished()
    assert st.Mapped().is_successful() and st.Skipped().is_successful()
    assert st.TimedOut().is_failed() and st.TriggerFailed().is_failed()
    assert st.ClientFailed().is_meta_state() and not st.ClientFailed().is_finished()
    assert not st.Running().is_finished() and not st.Pending().is_running()
    assert st.Paused().is_pending() and not st.Paused().is_scheduled()


def test_equality_ignores_message_but_not_result_or_fields():
    assert st.Success("a", result=1) == st.Success("b", result=1)
    assert st.Success(result=1) != st.Success(result=2)
    assert st.Success(result=1) != st.Cached(result=1)
    t = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert st.Scheduled(start_time=t) == st.Scheduled(start_time=t)
    assert st.Retrying(start_time=t, run_count=1) != st.Retrying(start_time=t, run_count=2)


def test_result_assignment_wraps_raw_values():
    state = st.Success()
    assert state.result is NoResult
    state.result = 5
    assert state.result == 5 and isinstance(state._result, Result)


def test_serialization_never_ships_an_unstored_value():
    data = st.Success(result={"secret": 1}).serialize()
    assert data["_result"] == {"type": "NoResultType"}
    assert "secret" not in json.dumps(data)


def test_stored_results_round_trip_through_json():
    result = Result(42, JSONResultHandler())
    result.store_safe_value()
    state = st.Cached(
        result=result,
        cached_inputs={"x": result},
        cached_parameters={"p": 1},
        cached_result_expiration=datetime.datetime(2030, 1, 1),
    )
    data = json.loads(json.dumps(state.serialize()))
    restored = st.State.deserialize(data)
    assert isinstance(restored, st.Cached)
    assert isinstance(restored._result, SafeResult) and restored._result.value == "42"
    assert restored._result.to_result().value == 42
    assert restored.cached_inputs["x"].to_result().value == 42
    assert restored.cached_parameters == {"p": 1}
    assert restored.cached_result_expiration.tzinfo is not None


@pytest.mark.parametrize("cls", list(st.ALL_STATES.values()))
def test_every_state_class_round_trips(cls):
    restored = st.State.deserialize(json.loads(json.dumps(cls(message="m").serialize())))
    assert type(restored) is cls and restored.message == "m"


def test_mapped_serializes_its_child_count_only():
    data = st.Mapped(map_states=[st.Success(), st.Failed()]).serialize()
    assert data["n_map_states"] == 2 and "_result" not in data
    assert st.State.deserialize(data).map_states == [None, None]


def test_retrying_and_meta_states_keep_their_fields():
    t = datetime.datetime(2031, 5, 6, 7, 8, tzinfo=datetime.UTC)
    restored = st.State.deserialize(st.Retrying(start_time=t, run_count=3).serialize())
    assert restored.start_time == t and restored.run_count == 3
    inner = st.State.deserialize(st.ClientFailed(state=st.Success("x")).serialize())
    assert isinstance(inner.state, st.Success)


def test_unknown_state_type_is_a_clear_error():
    with pytest.raises(SerializationError, match="Unknown state type 'Nope'"):
        st.State.deserialize({"type": "Nope"})


def test_no_result_is_a_singleton_distinct_from_none():
    import pickle

    assert pickle.loads(pickle.dumps(NoResult)) is NoResult
    assert NoResult != Result(None) and str(NoResult) == "NoResult"


class Annotated(st.Success):  # a subclass without __slots__ keeps a __dict__ of its own
    def __init__(self, *args, note=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.note = note


def test_states_keep_their_attributes_through_pickle_and_copy_with_slots():
    import copy
    import pickle

    from runwright.engine.state import Retrying, Success

    retrying = Retrying("again", result=3, run_count=2)
    annotated = Annotated("done", result=1, note="n")
    for state in (retrying, annotated):
        for clone in (pickle.loads(pickle.dumps(state)), copy.copy(state), copy.deepcopy(state)):
            assert clone == state and clone.message == state.message and clone.result == state.result
    assert pickle.loads(pickle.dumps(retrying)).run_count == 2 and copy.copy(annotated).note == "n"
    assert annotated != Annotated("done", result=1, note="other")
    with pytest.raises(AttributeError):
        Success().unknown = 1  # the engine's states have slots: no stray attributes
