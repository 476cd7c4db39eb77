"""``python -m runwright_server [start|token ...] [options]`` (``start`` is the default)."""

from runwright_server.cli import main

main()
