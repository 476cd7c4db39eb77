"""The cache plugin's modules import each other in one direction only."""

from runwright.testing.structure import import_cycles


def test_the_cache_plugin_has_no_import_cycles() -> None:
    assert import_cycles("runwright_cache") == []
