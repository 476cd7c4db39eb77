"""runwright-cache: cache validators, key-based cache policies and a persistent cache store.

Install it and give a task ``cache_for``; its result is then reused, across processes, while
a valid cached result exists::

    from datetime import timedelta
    from runwright import task
    from runwright_cache import Inputs, TaskSource

    @task(cache_for=timedelta(hours=1), cache_validator=Inputs() + TaskSource())
    def expensive(x):
        ...

Entries live in an SQLite file (``[plugins.cache] path``, default ``~/.runwright/cache.db``);
results are written by the task's result handler. See docs/caching.md.
"""

from runwright_cache.cache_validators import (
    all_inputs,
    all_parameters,
    duration_only,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)
from runwright_cache.identity import TaskIdentity
from runwright_cache.policies import (
    CachePolicy,
    CompoundPolicy,
    Inputs,
    Parameters,
    TaskSource,
)
from runwright_cache.store import CacheEntry, CacheStore, CacheStoreError

__version__ = "0.1.0"

__all__ = [
    "CacheEntry",
    "CachePolicy",
    "CacheStore",
    "CacheStoreError",
    "CompoundPolicy",
    "Inputs",
    "Parameters",
    "TaskIdentity",
    "TaskSource",
    "all_inputs",
    "all_parameters",
    "duration_only",
    "never_use",
    "partial_inputs_only",
    "partial_parameters_only",
]
