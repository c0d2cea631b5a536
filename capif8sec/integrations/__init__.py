"""Where capif8sec meets sockets: asyncio and blocking helpers, the reference AzF server, the probe.

The core packages (certs, tls, ...) do no network I/O; everything that opens, accepts or reads a
socket lives here, in the CLI, or in the examples.
"""
