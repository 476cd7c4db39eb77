"""The ``[server]`` keys the plugin registers (``runwright config``, the unknown-key check)
are the settings the server reads, with the same defaults (issue 13 item 13)."""

import dataclasses

from runwright_server.plugin import CONFIG_DEFAULTS
from runwright_server.settings import Settings


def test_every_setting_is_a_registered_key_with_its_default():
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    fields["db"] = ""
    del fields["db_url"]
    assert CONFIG_DEFAULTS == fields
