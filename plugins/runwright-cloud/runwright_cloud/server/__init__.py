"""The runwright backend server (install the ``[server]`` extra).

Modules: ``settings`` (config), ``db`` (engine, transactions), ``models`` (tables),
``migrate`` (Alembic), ``schemas`` (pydantic bodies), ``auth`` (tokens, tenants),
``locking`` (version-checked state writes), ``sweeper`` (zombie runs), ``limits`` (body size),
``routes`` (one module per resource), ``app`` (the factory) and ``cli`` (``runwright server``).
"""
