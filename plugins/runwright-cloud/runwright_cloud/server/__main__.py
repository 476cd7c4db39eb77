"""``python -m runwright_cloud.server [start|token ...] [options]`` (``start`` is the default)."""

from runwright_cloud.server.cli import main

main()
