"""runwright's hook dispatcher gives the same outcome as plain pluggy.

Each scenario registers the same plugins on a plain ``pluggy.PluginManager`` and on a
``RunwrightPluginManager`` and calls the same hooks on both: through the dispatcher
(``call_attributed``) and, on the runwright manager, through pluggy's own ``pm.hook.<name>``
(which the dispatcher serves too). Results, the order in which implementations and wrappers
ran, monitor calls and exceptions must be identical; the dispatcher only adds attribution
(a plugin's exception arrives as PluginError naming it, wrapping the very same exception).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from runwright import hookimpl
from runwright.hookspecs import PROJECT_NAME
from runwright.plugins import PluginError, RunwrightPluginManager

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class ProbeSpecs:
    @hookspec
    def probe_collect(self, value: Any) -> Any:
        """Every implementation; a list of the non-None results."""

    @hookspec(firstresult=True)
    def probe_first(self, value: Any) -> Any:
        """The first non-None result."""


HOOKS = ("probe_collect", "probe_first")


class Boom(Exception):
    """What a failing probe implementation raises."""


def make_plugin(log: list[Any], name: str, kind: str = "plain", result: Any = None, raises: bool = False, **opts: Any) -> Any:
    """A plugin implementing both probe hooks. ``kind``: plain, wrapper (new style),
    hookwrapper (old style), catching (a new-style wrapper turning errors into a result),
    forcing (an old-style wrapper forcing a result), keyword (a plain one with a default)."""

    def plain(value: Any) -> Any:
        log.append(name)
        if raises:
            raise Boom(name)
        return None if result is None else f"{result}:{value}"

    def keyword(value: Any, missing: Any = "default") -> Any:
        log.append((name, missing))
        return f"{name}:{missing}"

    def wrapper(value: Any) -> Any:
        log.append(f"{name}>")
        inner = yield
        log.append(f"<{name}")
        if raises:
            raise Boom(name)
        return [*inner, name] if isinstance(inner, list) else f"{name}({inner})"

    def catching(value: Any) -> Any:
        log.append(f"{name}>")
        try:
            inner = yield
        except Boom as exc:
            log.append(f"<{name} caught {exc}")
            return f"recovered by {name}"
        log.append(f"<{name}")
        return inner

    def hookwrapper(value: Any) -> Any:
        log.append(f"{name}>")
        outcome = yield
        log.append(f"<{name} saw {outcome.exception!r}")
        if raises:
            raise Boom(name)

    def forcing(value: Any) -> Any:
        log.append(f"{name}>")
        outcome = yield
        log.append(f"<{name}")
        outcome.force_result(f"forced by {name}")

    body = {"plain": plain, "keyword": keyword, "wrapper": wrapper, "catching": catching,
            "hookwrapper": hookwrapper, "forcing": forcing}[kind]
    if kind in ("wrapper", "catching"):
        opts["wrapper"] = True
    if kind in ("hookwrapper", "forcing"):
        opts["hookwrapper"] = True
    namespace = {hook: hookimpl(**opts)(body) for hook in HOOKS}
    return type(f"Probe_{name}", (), {k: staticmethod(v) for k, v in namespace.items()})()


class World:
    """One manager (plain pluggy, or runwright's) with the probe specs and a call log."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pm: pluggy.PluginManager = pluggy.PluginManager(PROJECT_NAME) if kind == "pluggy" else RunwrightPluginManager()
        self.pm.add_hookspecs(ProbeSpecs)
        self.log: list[Any] = []

    def register(self, name: str, **spec: Any) -> None:
        self.pm.register(make_plugin(self.log, name, **spec), name=name)

    def call(self, hook: str, **kwargs: Any) -> tuple[Any, ...]:
        """(outcome, log of this call) where outcome is ("ok", result) or ("raised", type, args)."""
        del self.log[:]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if self.kind == "dispatcher":
                    assert isinstance(self.pm, RunwrightPluginManager)
                    result = self.pm.call_attributed(hook, **kwargs)
                else:
                    result = getattr(self.pm.hook, hook)(**kwargs)
            outcome: tuple[Any, ...] = ("ok", result)
        except PluginError as exc:
            assert self.kind == "dispatcher"
            outcome = ("raised", type(exc.error), exc.error.args)
        except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
            outcome = ("raised", type(exc), exc.args if not isinstance(exc, RuntimeError) else "RuntimeError")
        teardown_warnings = sorted(type(w.message).__name__ for w in caught if issubclass(w.category, pluggy.PluggyTeardownRaisedWarning))
        return outcome, list(self.log), teardown_warnings


def worlds() -> list[World]:
    # pm.hook on runwright's manager ("runwright-hook") runs the dispatcher's general loop too
    return [World("pluggy"), World("dispatcher"), World("runwright-hook")]


def assert_same(all_worlds: list[World], hook: str, **kwargs: Any) -> tuple[Any, ...]:
    outcomes = [world.call(hook, **kwargs) for world in all_worlds]
    for world, outcome in zip(all_worlds[1:], outcomes[1:], strict=True):
        assert outcome == outcomes[0], f"{world.kind} differs from pluggy calling {hook}"
    return outcomes[0]


def apply(all_worlds: list[World], action: Callable[[World], Any]) -> None:
    for world in all_worlds:
        action(world)


SCENARIOS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "tryfirst and trylast ordering": [
        ("a", {"result": "a"}), ("first", {"result": "f", "tryfirst": True}),
        ("last", {"result": "l", "trylast": True}), ("b", {"result": "b"}),
        ("first2", {"result": "f2", "tryfirst": True}),
    ],
    "new-style wrappers around plain implementations": [
        ("a", {"result": "a"}), ("w", {"kind": "wrapper"}), ("b", {"result": "b", "tryfirst": True}),
        ("w-last", {"kind": "wrapper", "trylast": True}), ("w-first", {"kind": "wrapper", "tryfirst": True}),
    ],
    "old-style hookwrappers": [
        ("a", {"result": "a"}), ("hw", {"kind": "hookwrapper"}), ("forcing", {"kind": "forcing", "trylast": True}),
    ],
    "old- and new-style wrappers together": [
        ("a", {"result": "a"}), ("hw", {"kind": "hookwrapper"}), ("w", {"kind": "wrapper"}),
        ("hw-first", {"kind": "hookwrapper", "tryfirst": True}),
    ],
    "a failing implementation under wrappers": [
        ("a", {"result": "a"}), ("bad", {"raises": True}), ("hw", {"kind": "hookwrapper"}), ("w", {"kind": "wrapper"}),
    ],
    "a wrapper recovering from a failing implementation": [
        ("bad", {"raises": True}), ("catch", {"kind": "catching"}), ("w", {"kind": "wrapper", "tryfirst": True}),
    ],
    "a failing new-style wrapper teardown": [
        ("a", {"result": "a"}), ("bad-w", {"kind": "wrapper", "raises": True}), ("outer", {"kind": "catching", "tryfirst": True}),
    ],
    "a failing old-style wrapper teardown": [("a", {"result": "a"}), ("bad-hw", {"kind": "hookwrapper", "raises": True})],
    "a plain failing implementation": [("a", {"result": "a"}), ("bad", {"raises": True}), ("c", {"result": "c"})],
    "implementations returning None": [("none1", {}), ("a", {"result": "a"}), ("none2", {})],
    "an implementation with a defaulted parameter": [("kw", {"kind": "keyword"}), ("a", {"result": "a"})],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("hook", HOOKS)
def test_the_dispatcher_matches_pluggy(scenario: str, hook: str) -> None:
    all_worlds = worlds()
    for name, spec in SCENARIOS[scenario]:
        apply(all_worlds, lambda world, name=name, spec=spec: world.register(name, **spec))
    assert_same(all_worlds, hook, value=1)
    assert_same(all_worlds, hook, value=2)  # the second call uses the compiled entry


@pytest.mark.parametrize("hook", HOOKS)
def test_registration_after_the_first_call_set_blocked_and_unregister_match_pluggy(hook: str) -> None:
    all_worlds = worlds()
    apply(all_worlds, lambda w: w.register("a", result="a"))
    assert_same(all_worlds, hook, value=1)
    apply(all_worlds, lambda w: w.register("b", result="b", tryfirst=True))
    apply(all_worlds, lambda w: w.register("w", kind="wrapper"))
    assert_same(all_worlds, hook, value=1)
    apply(all_worlds, lambda w: w.pm.set_blocked("b"))  # unregisters b
    apply(all_worlds, lambda w: w.pm.set_blocked("never"))
    apply(all_worlds, lambda w: w.register("never", result="n"))  # blocked: not registered
    assert_same(all_worlds, hook, value=1)
    apply(all_worlds, lambda w: w.pm.unregister(name="w"))
    outcome = assert_same(all_worlds, hook, value=1)
    assert outcome[1] == ["a"]
    apply(all_worlds, lambda w: w.pm.unblock("b"))
    apply(all_worlds, lambda w: w.register("b", result="b"))
    assert_same(all_worlds, hook, value=1)


@pytest.mark.parametrize("hook", HOOKS)
def test_monitoring_on_and_off_matches_pluggy(hook: str) -> None:
    all_worlds = worlds()
    for world in all_worlds:
        world.register("a", result="a")
        world.register("w", kind="wrapper")
        world.register("bad", raises=True, trylast=True)
    undos = []
    for world in all_worlds:
        for label in ("inner", "outer"):

            def before(name: str, impls: Any, kwargs: Any, log: list[Any] = world.log, label: str = label) -> None:
                log.append((label, "before", name, [i.plugin_name for i in impls], dict(kwargs)))

            def after(outcome: Any, name: str, impls: Any, kwargs: Any, log: list[Any] = world.log, label: str = label) -> None:
                log.append((label, "after", name, type(outcome.exception).__name__, outcome.exception is None and outcome.get_result()))

            undos.append(world.pm.add_hookcall_monitoring(before, after))
    outcome = assert_same(all_worlds, hook, value=1)
    assert [entry[0:2] for entry in outcome[1] if isinstance(entry, tuple)] == [
        ("outer", "before"), ("inner", "before"), ("inner", "after"), ("outer", "after")
    ]
    for undo in reversed(undos):  # pluggy's undo restores what was there when it was added
        undo()
    outcome = assert_same(all_worlds, hook, value=1)
    assert not any(isinstance(entry, tuple) for entry in outcome[1])


def test_a_missing_argument_matches_pluggy_as_a_hook_call_error() -> None:
    all_worlds = worlds()
    apply(all_worlds, lambda w: w.register("a", result="a"))
    apply(all_worlds, lambda w: w.register("w", kind="wrapper"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pluggy also warns about the spec argument
        outcomes = [world.call("probe_collect") for world in all_worlds]
    assert {outcome[0][1] for outcome in outcomes} == {pluggy.HookCallError}
    assert len({repr(outcome[1]) for outcome in outcomes}) == 1  # the same wrappers ran


KINDS = ["plain", "plain", "plain", "wrapper", "hookwrapper", "catching", "forcing", "keyword"]


@pytest.mark.parametrize("seed", range(60))
def test_random_plugin_sets_match_pluggy(seed: int) -> None:
    rng = random.Random(seed)
    all_worlds = worlds()
    for index in range(rng.randint(1, 7)):
        kind = rng.choice(KINDS)
        spec: dict[str, Any] = {"kind": kind}
        if kind == "plain":
            spec["result"] = rng.choice([None, f"r{index}"])
            spec["raises"] = rng.random() < 0.15
        elif kind in ("wrapper", "hookwrapper"):
            spec["raises"] = rng.random() < 0.15
        order = rng.choice([None, "tryfirst", "trylast"])
        if order:
            spec[order] = True
        apply(all_worlds, lambda w, index=index, spec=spec: w.register(f"p{index}", **spec))
        if rng.random() < 0.3:
            assert_same(all_worlds, rng.choice(HOOKS), value=index)  # registration after calls
    if rng.random() < 0.3:
        victim = f"p{rng.randrange(index + 1)}"
        apply(all_worlds, lambda w: w.pm.unregister(name=victim))
    for hook in HOOKS:
        assert_same(all_worlds, hook, value="x")


def test_a_failing_implementation_is_attributed_to_its_plugin_even_under_wrappers() -> None:
    pm = RunwrightPluginManager()
    pm.add_hookspecs(ProbeSpecs)
    log: list[Any] = []
    pm.register(make_plugin(log, "fine", result="ok"), name="fine")
    pm.register(make_plugin(log, "broken", raises=True), name="broken")
    pm.register(make_plugin(log, "outer", kind="wrapper"), name="outer")
    pm.register(make_plugin(log, "observer", kind="hookwrapper"), name="observer")
    with pytest.raises(PluginError) as raised:
        pm.call_attributed("probe_collect", value=1)
    assert raised.value.plugin == "broken" and isinstance(raised.value.error, Boom)
    pm.unregister(name="broken")
    pm.register(make_plugin(log, "bad-teardown", kind="wrapper", raises=True, tryfirst=True), name="bad-teardown")
    with pytest.raises(PluginError) as raised:
        pm.call_attributed("probe_collect", value=1)
    assert raised.value.plugin == "bad-teardown" and str(raised.value.error) == "bad-teardown"
