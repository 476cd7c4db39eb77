"""The server's modules import each other in one direction only."""

from runwright.testing.structure import import_cycles


def test_the_server_has_no_import_cycles() -> None:
    assert import_cycles("runwright_server") == []
