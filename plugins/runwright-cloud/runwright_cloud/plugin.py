"""Hook implementations of the cloud plugin (loaded through the ``runwright`` entry point).

Intentionally empty for now: the hook implementations are written separately.
"""
