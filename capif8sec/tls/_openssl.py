"""The one OpenSSL setting Python's ``ssl`` does not expose and TS 33.210 needs: no session cache.

R38 wants session resumption off by default.  ``OP_NO_TICKET`` and ``num_tickets = 0`` stop
tickets, but a TLS 1.2 server still keeps OpenSSL's *stateful* session cache and resumes by
session ID (an independent scanner, sslyze, resumed 5 of 5).  A resumed session carries no
verified peer chain, so the post-handshake check refused those connections anyway; turning the
cache off makes the server do a full handshake instead, which is what the profile asks for.

``ssl`` has no ``SSL_CTX_set_session_cache_mode``; this module calls it through ``ctypes`` on the
``SSL_CTX`` of a context -- carefully, and only where every precondition is checked:

- CPython 3.7 to 3.14 on Linux, where the ``SSL_CTX *`` is the first field after the object
  header of an ``ssl.SSLContext`` (the header size is ``object.__basicsize__``); call it on a
  context that is not in use yet (the probe below toggles one of its options, under a lock);
- the libssl the process already loaded (``RTLD_NOLOAD``: never a second copy), with the
  version number ``ssl`` reports;
- the pointer is confirmed to be this context's ``SSL_CTX`` before anything is written: OpenSSL
  must report the same options and verify mode as the Python object, for two different values.

When any precondition fails, nothing is done and :func:`disable_session_cache` returns False
(the documented deviation then stands: resumed sessions are refused by the post-handshake
check).  No network I/O.
"""

from __future__ import annotations

import ctypes
import os
import ssl
import sys
import threading
from pathlib import Path

__all__ = ["disable_session_cache"]

_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_SESS_CACHE_OFF = 0

_lock = threading.Lock()
_probe_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_checked = False


def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``_ssl`` module uses, already loaded in this process, or None."""
    global _lib, _lib_checked
    with _lock:
        if _lib_checked:
            return _lib
        _lib_checked = True
        if (
            sys.implementation.name != "cpython"
            or not sys.platform.startswith("linux")
            or not (3, 7) <= sys.version_info[:2] <= (3, 14)  # the layouts read from CPython
        ):
            return None
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
        paths = {line.split()[-1] for line in maps.splitlines() if "/libssl.so" in line}
        if len(paths) != 1:  # none, or two different copies: do not guess
            return None
        try:
            lib = ctypes.CDLL(paths.pop(), mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            lib.OpenSSL_version_num.restype = ctypes.c_ulong
            if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
                return None
            lib.SSL_CTX_get_options.restype = ctypes.c_uint64
            lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
            lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_ctrl.restype = ctypes.c_long
            lib.SSL_CTX_ctrl.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_long,
                ctypes.c_void_p,
            ]
        except (OSError, AttributeError):
            return None
        _lib = lib
        return lib


def _ssl_ctx(ctx: ssl.SSLContext, lib: ctypes.CDLL) -> int | None:
    """The ``SSL_CTX *`` of ``ctx``, confirmed by OpenSSL itself, or None."""
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer:
        return None
    original = ctx.options
    probe = ssl.OP_NO_COMPRESSION  # set by every capif8sec context; toggled and restored
    try:
        for options in (original | probe, original & ~probe):
            ctx.options = options
            if lib.SSL_CTX_get_options(pointer) != int(ctx.options):
                return None
    finally:
        ctx.options = original
    if lib.SSL_CTX_get_verify_mode(pointer) != int(ctx.verify_mode):
        return None
    return int(pointer)


def disable_session_cache(ctx: ssl.SSLContext) -> bool:
    """Turn OpenSSL's server session cache off for ``ctx`` (no session-ID resumption).

    :returns: True when the cache is off (confirmed by reading the mode back), False when it
        could not be done safely here (see the module's preconditions).
    """
    lib = _libssl()
    if lib is None:
        return False
    with _probe_lock:  # the probe toggles an option: one probe at a time
        pointer = _ssl_ctx(ctx, lib)
        if pointer is None:
            return False
        lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
        mode = lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None)
    return bool(mode == _SSL_SESS_CACHE_OFF)
