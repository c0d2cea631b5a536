"""SCRAM in HTTP headers (RFC 7804): challenges, sid table, Authentication-Info (R52-R54).

Sans-I/O: every test passes header strings; the channel binding stands for the TLS connection
each request arrived on.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capif8sec.auth import (
    ALLOW_PLAIN_SCRAM,
    AllowPlainScram,
    ChannelBinding,
    ScramAuthenticator,
    ScramClient,
    ScramServer,
    ScramVerifier,
    make_verifier,
)
from capif8sec.auth.http import (
    MAX_HEADER_CHARS,
    HttpAuthenticated,
    HttpChallenge,
    HttpScramClient,
    HttpScramServer,
    parse_auth_params,
    parse_challenges,
    parse_credentials,
)
from capif8sec.errors import AuthenticationFailed, UsageError

FAST = 4096
PASSWORD = "correct horse battery staple"
BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"ccf certificate").digest())
OTHER_BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"mitm cert").digest())
VERIFIER = make_verifier("rof-1", PASSWORD, iterations=FAST)


def _auth(*verifiers: ScramVerifier) -> ScramAuthenticator:
    table = {v.username: v for v in verifiers or (VERIFIER,)}
    return ScramAuthenticator(table.get, unknown_user_iterations=FAST)


def _http(**kw: object) -> HttpScramServer:
    return HttpScramServer(_auth().exchange, realm="capif8", **kw)  # type: ignore[arg-type]


def _client(
    binding: ChannelBinding | AllowPlainScram = BINDING,
    username: str = "rof-1",
    password: str = PASSWORD,
) -> HttpScramClient:
    return HttpScramClient(ScramClient(username, password, binding))


def _round_one(
    server: HttpScramServer,
    client: HttpScramClient,
    binding: ChannelBinding | AllowPlainScram = BINDING,
) -> HttpChallenge:
    step = server.handle(client.first(server.challenge(binding)), binding)
    assert isinstance(step, HttpChallenge)
    return step


def _login(
    server: HttpScramServer,
    client: HttpScramClient,
    binding: ChannelBinding | AllowPlainScram = BINDING,
) -> HttpAuthenticated:
    challenge = _round_one(server, client, binding)
    done = server.handle(client.final(challenge.www_authenticate), binding)
    assert isinstance(done, HttpAuthenticated)
    client.verify(done.authentication_info)
    return done


# --------------------------------------------------------------------------- happy paths


def test_plus_login_over_headers() -> None:
    server = _http()
    assert server.challenge(BINDING) == 'SCRAM-SHA-256-PLUS realm="capif8"'
    client = _client()
    first = client.first(server.challenge(BINDING))
    assert first.startswith('SCRAM-SHA-256-PLUS realm="capif8", data=')
    step = server.handle(first, BINDING)
    assert isinstance(step, HttpChallenge)
    assert step.www_authenticate.startswith("SCRAM-SHA-256-PLUS sid=")
    assert server.pending == 1
    final = client.final(step.www_authenticate)
    done = server.handle(final, BINDING)
    assert isinstance(done, HttpAuthenticated)
    assert done.authentication_info.startswith("sid=")
    client.verify(done.authentication_info)
    assert done.peer.identity == "rof-1"
    assert done.peer.evidence["mechanism"] == "SCRAM-SHA-256-PLUS"
    assert server.pending == 0


def test_rfc7677_vector_in_rfc7804_headers() -> None:
    """The RFC 7677 messages, carried as RFC 7804 section 5 shows (without its stray newline)."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = make_verifier("user", "pencil", iterations=4096, salt=salt)

    def exchange(binding: ChannelBinding | AllowPlainScram) -> ScramServer:
        return ScramServer({"user": verifier}.get, binding, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")

    server = HttpScramServer(exchange, realm="testrealm@example.com")
    client = HttpScramClient(
        ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce="rOprNGfwEbeRWgbNEkqO")
    )
    first = client.first(
        'Digest realm="realm1@example.com", SCRAM-SHA-256 realm="testrealm@example.com"'
    )
    assert first == (
        'SCRAM-SHA-256 realm="testrealm@example.com", '
        "data=biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8="
    )
    step = server.handle(first, ALLOW_PLAIN_SCRAM)
    assert isinstance(step, HttpChallenge)
    sid = step.www_authenticate.split("sid=")[1].split(",")[0]
    server_first = base64.b64decode(step.www_authenticate.split("data=")[1])
    assert server_first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = client.final(step.www_authenticate)
    assert (
        final
        == f"SCRAM-SHA-256 sid={sid}, data="
        + base64.b64encode(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        ).decode()
    )
    done = server.handle(final, ALLOW_PLAIN_SCRAM)
    assert isinstance(done, HttpAuthenticated)
    assert (
        done.authentication_info
        == f"sid={sid}, data="
        + base64.b64encode(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").decode()
    )
    client.verify(done.authentication_info)


def test_plain_scram_only_with_the_named_downgrade() -> None:
    server = _http()
    assert server.challenge(ALLOW_PLAIN_SCRAM) == 'SCRAM-SHA-256 realm="capif8"'
    done = _login(server, _client(ALLOW_PLAIN_SCRAM), ALLOW_PLAIN_SCRAM)
    assert done.peer.evidence["mechanism"] == "SCRAM-SHA-256"
    # On a channel with a binding, the plain scheme is refused outright.
    plain_first = _client(ALLOW_PLAIN_SCRAM).first()
    assert plain_first.startswith("SCRAM-SHA-256 data=")
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        server.handle(plain_first, BINDING)
    # ... and -PLUS where only plain is allowed.
    with pytest.raises(AuthenticationFailed):
        server.handle(_client().first(), ALLOW_PLAIN_SCRAM)


def test_scheme_and_gs2_flag_must_agree() -> None:
    """A -PLUS scheme carrying a 'y' client-first (or the reverse) is refused."""
    server = _http()
    y_first = ScramClient("rof-1", PASSWORD, BINDING, server_offers_plus=False).first()
    header = "SCRAM-SHA-256-PLUS data=" + base64.b64encode(y_first).decode()
    with pytest.raises(AuthenticationFailed):
        server.handle(header, BINDING)


def test_scheme_is_case_insensitive_and_realm_optional() -> None:
    server = _http()
    client = ScramClient("rof-1", PASSWORD, BINDING)
    header = "scram-sha-256-plus   data=" + base64.b64encode(client.first()).decode()
    assert isinstance(server.handle(header, BINDING), HttpChallenge)


def test_client_refuses_a_challenge_without_plus() -> None:
    """A MITM that strips -PLUS from the challenge gets no downgrade from the ROF."""
    with pytest.raises(AuthenticationFailed, match="does not offer SCRAM-SHA-256-PLUS"):
        _client().first('SCRAM-SHA-256 realm="capif8"')
    with pytest.raises(AuthenticationFailed, match="realm"):
        HttpScramClient(ScramClient("rof-1", PASSWORD, BINDING), realm="capif8").first(
            'SCRAM-SHA-256-PLUS realm="elsewhere"'
        )


# --------------------------------------------------------------------------- failures


def test_wrong_password_and_unknown_user_fail_alike() -> None:
    server = _http()
    outcomes = []
    for client in (_client(password="wrong"), _client(username="nobody")):
        step = _round_one(server, client)
        with pytest.raises(AuthenticationFailed) as info:
            server.handle(client.final(step.www_authenticate), BINDING)
        outcomes.append(str(info.value))
        data = base64.b64decode(step.www_authenticate.split("data=")[1])
        assert data.endswith(b",i=4096")
    assert outcomes == ["authentication failed"] * 2


def test_binding_must_not_change_between_the_two_requests() -> None:
    """The second request arrives through another certificate: refused (relay)."""
    server = _http()
    client = _client()
    step = _round_one(server, client)
    with pytest.raises(AuthenticationFailed):
        server.handle(client.final(step.www_authenticate), OTHER_BINDING)
    assert server.pending == 0  # the sid was consumed


def test_client_binding_from_another_certificate_is_refused() -> None:
    server = _http()
    client = _client(OTHER_BINDING)
    step = _round_one(server, client)
    with pytest.raises(AuthenticationFailed):
        server.handle(client.final(step.www_authenticate), BINDING)


def test_sid_is_single_use() -> None:
    """A replayed second request (same sid, same data) is refused."""
    server = _http()
    client = _client()
    step = _round_one(server, client)
    final = client.final(step.www_authenticate)
    assert isinstance(server.handle(final, BINDING), HttpAuthenticated)
    with pytest.raises(AuthenticationFailed):
        server.handle(final, BINDING)


def test_unknown_and_malformed_sids() -> None:
    server = _http()
    client = _client()
    step = _round_one(server, client)
    final = client.final(step.www_authenticate)
    sid = step.www_authenticate.split("sid=")[1].split(",")[0]
    for bad in ("A" * 32, "short", "bad/chars" * 4, "x" * 65):
        with pytest.raises(AuthenticationFailed):
            server.handle(final.replace(sid, bad), BINDING)
    assert isinstance(server.handle(final, BINDING), HttpAuthenticated)


def test_pending_exchanges_expire() -> None:
    now = [0.0]
    server = _http(max_age=30.0, clock=lambda: now[0])
    client = _client()
    step = _round_one(server, client)
    now[0] = 31.0
    with pytest.raises(AuthenticationFailed):
        server.handle(client.final(step.www_authenticate), BINDING)
    assert server.pending == 0


def test_pending_table_is_bounded() -> None:
    """An attacker opening exchanges evicts the oldest; memory never grows past the limit."""
    server = _http(max_pending=4)
    clients = [_client() for _ in range(10)]
    steps = [_round_one(server, client) for client in clients]
    assert server.pending == 4
    with pytest.raises(AuthenticationFailed):
        server.handle(clients[0].final(steps[0].www_authenticate), BINDING)
    done = server.handle(clients[-1].final(steps[-1].www_authenticate), BINDING)
    assert isinstance(done, HttpAuthenticated)
    assert server.pending == 3


def test_realm_mismatch_refused() -> None:
    server = _http()
    first = _client().first().replace("SCRAM-SHA-256-PLUS ", 'SCRAM-SHA-256-PLUS realm="x", ')
    with pytest.raises(AuthenticationFailed):
        server.handle(first, BINDING)


def test_client_checks_the_server_signature_and_sid() -> None:
    server = _http()
    client = _client()
    step = _round_one(server, client)
    done = server.handle(client.final(step.www_authenticate), BINDING)
    assert isinstance(done, HttpAuthenticated)
    sid, _ = done.authentication_info.split(", ")
    forged = "v=" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(AuthenticationFailed):
        client.verify(f"{sid}, data={base64.b64encode(forged.encode()).decode()}")
    other = _client()
    step2 = _round_one(server, other)
    other.final(step2.www_authenticate)
    with pytest.raises(AuthenticationFailed):
        other.verify(done.authentication_info)  # another exchange's sid


@pytest.mark.parametrize(
    "header",
    [
        "",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256-PLUS data=",
        "SCRAM-SHA-256-PLUS data=@@@@",
        "SCRAM-SHA-256-PLUS data=biws",  # b"n,," alone: not a client-first
        "SCRAM-SHA-256-PLUS data=biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8K",  # RFC 7804's \n
        "SCRAM-SHA-256-PLUS data=YQ",  # missing padding
        "SCRAM-SHA-256-PLUS data=YR==",  # non-canonical base64
        "SCRAM-SHA-256-PLUS data=YQ==, data=YQ==",  # duplicate parameter
        "SCRAM-SHA-256-PLUS YWJj",  # token68
        'SCRAM-SHA-256-PLUS data="YQ==',  # unterminated quoted string
        "SCRAM-SHA-256-PLUS data=YQ==,",
        "SCRAM-SHA-256-PLUS, data=YQ==",
        "Basic dXNlcjpwYXNz",
        "SCRAM-SHA-256-PLUS data=YQ==\r\nX-Injected: 1",
        "SCRAM-SHA-256-PLUS data=\u00e9",
        "SCRAM-SHA-256-PLUS realm=capif8 data=YQ==",
        "SCRAM-SHA-256-PLUS " + ", ".join(f"p{i}=1" for i in range(20)),
        "SCRAM-SHA-256-PLUS data=" + "A" * (MAX_HEADER_CHARS + 4),
    ],
)
def test_malformed_authorization_refused(header: str) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        _http().handle(header, BINDING)


def test_quoted_values_and_whitespace_are_accepted() -> None:
    client = ScramClient("rof-1", PASSWORD, BINDING)
    data = base64.b64encode(client.first()).decode()
    header = f'SCRAM-SHA-256-PLUS  realm = "capif8" ,\tdata="{data}"'
    assert isinstance(_http().handle(header, BINDING), HttpChallenge)


def test_parsers_directly() -> None:
    assert parse_credentials('X a=1, b="q\\"x"') == ("X", {"a": "1", "b": 'q"x'})
    assert parse_auth_params("sid=abc, data=YQ==") == {"sid": "abc", "data": "YQ=="}
    assert parse_challenges(
        'Digest realm="r", qop="auth", Basic abc==, SCRAM-SHA-256-PLUS realm="c", '
        "SCRAM-SHA-256 sid=AAAABBBBCCCCDDDD, data=YQ==, Negotiate"
    ) == [
        ("Digest", {"realm": "r", "qop": "auth"}),
        ("Basic", {"": "abc=="}),
        ("SCRAM-SHA-256-PLUS", {"realm": "c"}),
        ("SCRAM-SHA-256", {"sid": "AAAABBBBCCCCDDDD", "data": "YQ=="}),
        ("Negotiate", {}),
    ]
    with pytest.raises(UsageError):
        parse_credentials(b"SCRAM data=YQ==")  # type: ignore[arg-type]


def test_configuration_checks() -> None:
    with pytest.raises(UsageError, match="realm"):
        HttpScramServer(_auth().exchange, realm='a"b')
    with pytest.raises(UsageError):
        HttpScramServer(_auth().exchange, realm="r", max_pending=0)
    with pytest.raises(UsageError):
        _http().challenge(None)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        HttpScramClient("not a client")  # type: ignore[arg-type]


def test_concurrent_logins() -> None:
    """The sid table is shared by request threads."""
    server = _http(max_pending=64)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            _login(server, _client())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert server.pending == 0


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=300,
    deadline=dt.timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
)
HEADER_ALPHABET = 'SCRAM-SHA-256-PLUS data=sid=realm="\\,\t YQ+/=abcAB01\u00e9\r\n'


def _only_auth_failed(action: Callable[[], object]) -> None:
    start = time.perf_counter()
    with contextlib.suppress(AuthenticationFailed):
        action()
    assert time.perf_counter() - start < 0.5


_headers = st.text(max_size=5000) | st.text(HEADER_ALPHABET, max_size=400)


@FUZZ
@given(_headers)
def test_fuzz_authorization(header: str) -> None:
    server = _http()
    _only_auth_failed(lambda: server.handle(header, BINDING))
    _only_auth_failed(lambda: server.handle(header, ALLOW_PLAIN_SCRAM))


@FUZZ
@given(_headers)
def test_fuzz_header_parsers(header: str) -> None:
    _only_auth_failed(lambda: parse_credentials(header))
    _only_auth_failed(lambda: parse_challenges(header))
    _only_auth_failed(lambda: parse_auth_params(header))


@FUZZ
@given(_headers)
def test_fuzz_client_side_headers(header: str) -> None:
    _only_auth_failed(lambda: _client().first(header))
    client = HttpScramClient(ScramClient("rof-1", PASSWORD, BINDING, max_iterations=FAST))
    client.first()
    _only_auth_failed(lambda: client.final(header))


@FUZZ
@given(st.integers(0, 300), st.integers(0, 6), st.text(HEADER_ALPHABET, max_size=6))
def test_fuzz_mutated_second_request(index: int, cut: int, insert: str) -> None:
    server = _http()
    client = _client()
    step = _round_one(server, client)
    final = client.final(step.www_authenticate)
    at = index % (len(final) + 1)
    mutated = final[:at] + insert + final[at + cut :]
    try:
        done = server.handle(mutated, BINDING)
    except AuthenticationFailed:
        return
    # Only edits that leave the parsed header unchanged (whitespace, scheme case) pass.
    assert isinstance(done, HttpAuthenticated)
    scheme, params = parse_credentials(mutated)
    original_scheme, original_params = parse_credentials(final)
    assert (scheme.upper(), params) == (original_scheme.upper(), original_params)
