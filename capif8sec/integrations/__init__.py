"""Where capif8sec meets sockets: asyncio and blocking helpers, the reference AzF server, the probe.

The core packages (certs, tls, ...) do no network I/O; everything that opens, accepts or reads a
socket lives here, in the CLI, or in the examples.

The framework integrations are optional extras, imported as submodules:
:mod:`~capif8sec.integrations.asgi` (ASGI middleware, no extra),
:mod:`~capif8sec.integrations.uvicorn` (``asgi-uvicorn``),
:mod:`~capif8sec.integrations.hypercorn` (``asgi-hypercorn``),
:mod:`~capif8sec.integrations.httpx` (``httpx``) and :mod:`~capif8sec.integrations.aiohttp`
(``aiohttp``); :mod:`~capif8sec.integrations.handshake` runs the post-handshake check inside the
handshake of the connections those libraries make.
"""
