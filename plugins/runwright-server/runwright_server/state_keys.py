"""The cache key of a Cached state, computed by the database from the state's JSON text.

A Cached state carries the key its client computed (``"cache_key"``, see
:func:`runwright.engine.cache_validators.cache_key`). ``task_run_states.cache_key`` holds it
so that ``GET /cached_states`` can let the database keep only the newest state of each key
(a task cached for many runs records a hit, the same key, every run). The column is filled by
the same ``INSERT`` that appends the state to the history: :func:`cache_key_of` is the SQL
expression of the state text and type parameters, so no writer (single writes, batches)
passes anything new, and no state text is parsed in Python for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class cache_key_of(FunctionElement[str]):  # noqa: N801 - named like the SQL functions it stands for
    """``cache_key_of(state_text, state_type)``: the state's ``cache_key`` when it is a Cached
    state (SQLite ``json_extract``, PostgreSQL ``->>``); NULL otherwise, and on a database
    without JSON functions (every state then counts as its own key, which is still correct)."""

    type = Text()
    inherit_cache = True
    name = "cache_key_of"

    def __init__(self, state: BindParameter[Any], state_type: BindParameter[Any]) -> None:
        super().__init__(state, state_type)


def _arguments(element: cache_key_of, compiler: Any, **kw: Any) -> tuple[str, str]:
    state, state_type = list(element.clauses)
    return compiler.process(state, **kw), compiler.process(state_type, **kw)


@compiles(cache_key_of)
def _null(element: cache_key_of, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(cache_key_of, "sqlite")
def _sqlite(element: cache_key_of, compiler: Any, **kw: Any) -> str:
    state, state_type = _arguments(element, compiler, **kw)
    return f"CASE WHEN {state_type} = 'Cached' THEN json_extract({state}, '$.cache_key') END"


@compiles(cache_key_of, "postgresql")
def _postgresql(element: cache_key_of, compiler: Any, **kw: Any) -> str:
    state, state_type = _arguments(element, compiler, **kw)
    return f"CASE WHEN {state_type} = 'Cached' THEN CAST({state} AS json) ->> 'cache_key' END"
