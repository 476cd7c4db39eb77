"""runwright-server: the self-hostable runwright backend server (FastAPI, SQLAlchemy 2, Alembic).

Clients talk to it over HTTP (``runwright-cloud``); nothing here is imported by a client
process. ``runwright server start`` (entry point ``server = runwright_server.plugin`` in the
``runwright`` group) or ``python -m runwright_server`` runs it.

Modules: ``settings`` (config), ``db`` (engine, transactions), ``models`` (tables),
``migrate`` (Alembic), ``schemas`` (pydantic bodies), ``auth`` (tokens, tenants),
``locking`` (version-checked state writes), ``sweeper`` (zombie runs), ``limits`` (body size),
``routes`` (one module per resource), ``app`` (the factory), ``cli`` (``runwright server``),
``embedded`` (this machine's server in the background, for the quick start), ``plugin``
(the runwright hooks) and ``testing`` (a live server subprocess for tests and benchmarks).
Importing the package imports none of them.
"""

__version__ = "0.1.0"
