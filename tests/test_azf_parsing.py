"""The reference endpoint's request head parser refuses ambiguous framing (found in review).

One request per connection and ``Connection: close`` make smuggling moot behind nothing, but a
proxy in front could frame a request differently: anything but one ``Content-Length`` is
refused (``400``), as are field names that are not tokens and control characters in values.
"""

from __future__ import annotations

import pytest

from capif8sec.integrations.azf import MAX_HEADERS, parse_request


def test_a_plain_request_is_parsed() -> None:
    request = parse_request(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX: a\tb \r\n\r\n")
    assert request is not None
    assert (request.method, request.path) == ("POST", "/x")
    assert request.header("content-length") == "2" and request.header("x") == "a\tb"


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\nInjected: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n",
    ],
)
def test_ambiguous_or_malformed_heads_are_refused(head: bytes) -> None:
    assert parse_request(head) is None
