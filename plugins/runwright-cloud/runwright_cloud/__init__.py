"""runwright-cloud: report runs to a runwright server, and (with the ``[server]`` extra) the server.

Importing this package never imports the engine core or the server stack; the client is
:class:`runwright_cloud.client.Client`.
"""

__version__ = "0.1.0"
