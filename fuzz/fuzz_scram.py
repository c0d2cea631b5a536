"""atheris target: the SCRAM parsers (RFC 5802 / 7677 messages) and the RFC 7804 header grammar.

The first byte of an input picks a mode; the rest is split at NUL bytes (never valid inside a
SCRAM message or an HTTP header) into up to three messages:

====  =========================================================================================
mode  what the messages go into
====  =========================================================================================
0     ``ScramServer`` (SCRAM-SHA-256-PLUS, tls-server-end-point): client-first, client-final,
      and one more message after that
1     the same with ``ALLOW_PLAIN_SCRAM`` (SCRAM-SHA-256)
2     ``ScramClient`` (-PLUS): server-first (``@N`` stands for the client nonce), server-final
3     ``ScramClient`` with flag ``y`` (server said it has no -PLUS): the same
4     ``parse_credentials``, ``parse_challenges``, ``parse_auth_params`` on each message
5     ``HttpScramServer`` (-PLUS): two ``Authorization`` values (``@S`` stands for the sid the
      first one was given)
6     the same with ``ALLOW_PLAIN_SCRAM``
7     ``HttpScramClient``: the initial ``WWW-Authenticate``, the server-first challenge, the
      ``Authentication-Info``
8     ``saslprep`` and the ``ScramClient`` constructor on text (UTF-8, lone surrogates allowed)
====  =========================================================================================

Nonces are fixed (the ``nonce=`` test hook), so a seed can hold a complete, valid exchange and
mutations start from the success path.  Only :class:`~capif8sec.errors.Capif8secError` may come
out; anything else is a crash.
"""

from __future__ import annotations

import contextlib
import hashlib

import atheris_common

with atheris_common.instrumented():
    from capif8sec.auth.http import (
        HttpChallenge,
        HttpScramClient,
        HttpScramServer,
        parse_auth_params,
        parse_challenges,
        parse_credentials,
    )
    from capif8sec.auth.scram import (
        ALLOW_PLAIN_SCRAM,
        AllowPlainScram,
        ChannelBinding,
        ScramClient,
        ScramServer,
        make_verifier,
        saslprep,
    )
    from capif8sec.errors import Capif8secError

MODES = 9
ITERATIONS = 4096  # the floor: PBKDF2 in the client stays around a millisecond
USERNAME = "rof-1"
PASSWORD = "correct horse battery staple"  # noqa: S105 -- test material
CLIENT_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SERVER_NONCE = "3rfcNHYJY1ZVvWVs7jmvQK8o"
BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"ccf certificate").digest())
_VERIFIERS = {USERNAME: make_verifier(USERNAME, PASSWORD, iterations=ITERATIONS)}


def _server(binding: ChannelBinding | AllowPlainScram) -> ScramServer:
    return ScramServer(
        _VERIFIERS.get, binding, unknown_user_iterations=ITERATIONS, nonce=SERVER_NONCE
    )


def _client(binding: ChannelBinding | AllowPlainScram, *, plus: bool = True) -> ScramClient:
    return ScramClient(
        USERNAME,
        PASSWORD,
        binding,
        server_offers_plus=plus,
        max_iterations=ITERATIONS,
        nonce=CLIENT_NONCE,
    )


def _http_server() -> HttpScramServer:
    return HttpScramServer(_server, realm="capif8")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _run(mode: int, messages: list[bytes]) -> None:
    first = messages[0]
    second = messages[1] if len(messages) > 1 else b""
    third = messages[2] if len(messages) > 2 else b""
    if mode in (0, 1):
        server = _server(BINDING if mode == 0 else ALLOW_PLAIN_SCRAM)
        server.receive(first)
        server.receive(second)
        if server.complete:
            server.result()
        server.receive(third)
    elif mode in (2, 3):
        client = _client(BINDING, plus=mode == 2)
        client.first()
        client.final(first.replace(b"@N", CLIENT_NONCE.encode()))
        client.verify(second)
    elif mode == 4:
        for message in messages:
            text = message.decode("latin-1")
            for parse in (parse_credentials, parse_challenges, parse_auth_params):
                with contextlib.suppress(Capif8secError):
                    parse(text)
    elif mode in (5, 6):
        binding = BINDING if mode == 5 else ALLOW_PLAIN_SCRAM
        http = _http_server()
        step = http.handle(first.decode("latin-1"), binding)
        if not isinstance(step, HttpChallenge):
            return
        sid = step.www_authenticate.split("sid=", 1)[1].split(",", 1)[0]
        http.handle(second.decode("latin-1").replace("@S", sid), binding)
    elif mode == 7:
        http_client = HttpScramClient(_client(BINDING))
        http_client.first(first.decode("latin-1"))
        http_client.final(second.decode("latin-1").replace("@N", CLIENT_NONCE))
        http_client.verify(third.decode("latin-1"))
    else:
        text = _text(first)
        for allow in (False, True):
            with contextlib.suppress(Capif8secError):
                saslprep(text, allow_unassigned=allow)
        ScramClient(text, _text(second), ALLOW_PLAIN_SCRAM)


def test_one_input(data: bytes) -> None:
    """One fuzz input: mode byte, then up to three NUL-separated messages."""
    if not data:
        return
    with contextlib.suppress(Capif8secError):
        _run(data[0] % MODES, data[1:].split(b"\x00", 2))


def seeds() -> dict[str, bytes]:
    """Complete, valid exchanges (fixed nonces) for every mode, and header samples."""

    def seed(mode: int, *messages: bytes) -> bytes:
        return bytes([mode]) + b"\x00".join(messages)

    out: dict[str, bytes] = {}
    exchanges = (  # (server mode, client mode, client, server)
        (0, 2, _client(BINDING), _server(BINDING)),
        (1, None, _client(ALLOW_PLAIN_SCRAM), _server(ALLOW_PLAIN_SCRAM)),
        (None, 3, _client(BINDING, plus=False), _server(ALLOW_PLAIN_SCRAM)),
    )
    for server_mode, client_mode, client, server in exchanges:
        client_first = client.first()
        server_first = server.receive(client_first)
        assert server_first is not None
        client_final = client.final(server_first)
        server_final = server.receive(client_final)
        assert server_final is not None
        client.verify(server_final)
        if server_mode is not None:
            out[f"server-{server_mode}"] = seed(server_mode, client_first, client_final)
        if client_mode is not None:
            nonce_less = server_first.replace(CLIENT_NONCE.encode(), b"@N", 1)
            out[f"client-{client_mode}"] = seed(client_mode, nonce_less, server_final)
    for mode, binding in ((5, BINDING), (6, ALLOW_PLAIN_SCRAM)):
        http, http_client = _http_server(), HttpScramClient(_client(binding))
        challenge = http.challenge(binding)
        authorization = http_client.first(challenge)
        step = http.handle(authorization, binding)
        assert isinstance(step, HttpChallenge)
        second = http_client.final(step.www_authenticate)
        sid = step.www_authenticate.split("sid=", 1)[1].split(",", 1)[0]
        done = http.handle(second, binding)
        out[f"http-server-{mode}"] = seed(
            mode, authorization.encode(), second.replace(sid, "@S").encode()
        )
        out[f"headers-{mode}"] = seed(
            4,
            authorization.encode(),
            step.www_authenticate.encode(),
            done.authentication_info.encode(),  # type: ignore[union-attr]
        )
        if mode == 5:
            out["http-client"] = seed(
                7,
                challenge.encode(),
                step.www_authenticate.replace(CLIENT_NONCE, "@N").encode(),
                done.authentication_info.encode(),  # type: ignore[union-attr]
            )
    out["headers-mixed"] = seed(
        4, b'Basic realm="x", SCRAM-SHA-256-PLUS realm="capif8", Bearer abc==', b"Basic dXNlcg=="
    )
    out["saslprep"] = seed(8, "I\u00adX \u2168 \u00aa".encode(), "p\u00e4ss\u2003word".encode())
    return out


if __name__ == "__main__":
    atheris_common.main(test_one_input, seeds())
