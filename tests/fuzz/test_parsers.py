"""Hypothesis properties over every parser and validator reachable from the network or a file.

The contract (issue 7): arbitrary input -- bytes, text, and inputs built from valid ones and then
mutated, so the fuzzing gets past the first check -- ends in a valid result or in a typed
:class:`~capif8sec.errors.Capif8secError`, never in another exception, and within the per-input
``deadline`` of the ``capif8sec-parsers`` profile (:mod:`fuzz_support`).

Already fuzzed elsewhere, and not repeated here:

* certificates, CRLs, lint, chain validation, the lint CLI -- ``tests/fuzz/test_cert_fuzz.py``;
* SCRAM messages, arbitrary and mutated, both sides -- ``tests/auth/test_scram.py``;
* RFC 7804 SCRAM headers, the three header parsers, ``HttpScramServer.handle`` --
  ``tests/auth/test_http_scram.py``;
* in-channel PSK server messages -- ``tests/auth/test_inchannel.py``;
* PSK files as text and bytes -- ``tests/auth/test_pskfile.py``;
* CAPIF-8 JSON as text, bytes, JSON values, one field replaced -- ``tests/capif8/test_messages.py``.

This file fills the gaps: chain building over mixed candidate lists, CA certificates re-signed
after mutation, lint under every profile; policy files (text, bytes, generated TOML, line-level
mutations) and the policy engine's patterns; identity parsing; CAPIF-8 JSON mutated byte by
byte; structured SCRAM messages (arbitrary Unicode usernames, server-first fields); the
``CAPIF8-PSK`` RFC 7804 scheme and structured ``Authorization`` values; the client side of the
in-channel PSK proof and of both HTTP schemes; key-encryption-key text and files; the SQLite
credential database (altered rows, damaged file); private key and chain files
(``Identity.from_files``); the reference AzF's request parser, its request handling and its
stream handler.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import ipaddress
import itertools
import json
import shutil
import sqlite3
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fuzz_support import (
    LINE_OPS,
    OPS,
    LineOp,
    Op,
    examples,
    mutate,
    mutate_lines,
    resign,
    typed,
    weighted,
)
from hypothesis import assume, event, example, given, reject
from hypothesis import strategies as st

from capif8sec import tls
from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.auth.credentials import PskCredential, Validity
from capif8sec.auth.http import (
    PSK_SCHEME,
    HttpChallenge,
    HttpExchangeServer,
    HttpPskClient,
    HttpScramClient,
    HttpScramServer,
    http_psk_server,
)
from capif8sec.auth.inchannel import NONCE_BYTES, InChannelPskAuthenticator, InChannelPskClient
from capif8sec.auth.scram import (
    ALLOW_PLAIN_SCRAM,
    AllowPlainScram,
    ChannelBinding,
    ScramAuthenticator,
    ScramClient,
    make_verifier,
)
from capif8sec.auth.stores import (
    CredentialStoreError,
    KeyEncryptionKey,
    MemoryStore,
    SqliteStore,
)
from capif8sec.capif8.guard import MessageGuard
from capif8sec.capif8.messages import (
    MessageError,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.certs import ChainValidator, Report, lint
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.errors import (
    AuthenticationFailed,
    Capif8secError,
    CertificateParseError,
    TlsConfigError,
    UsageError,
)
from capif8sec.integrations import azf
from capif8sec.policy import PolicyEngine, loads_policy
from capif8sec.policy.identity import (
    IDENTITY_KINDS,
    DnsId,
    identities_of_peer,
    identity_key,
    matches,
    matches_reference,
    parse_identity,
    policy_keys,
    reference_identity,
)
from capif8sec.policy.loader import PolicyFileError
from capif8sec.policy.model import Policy, PolicyRequest
from capif8sec.testing import IssuedCert, TestPKI
from capif8sec.tls.check import TlsPeer

# Mutated certificates make cryptography warn (non-positive serials, odd attribute lengths).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DER = serialization.Encoding.DER
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
CCF = "ccf.capif.example"
BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"ccf certificate").digest())
FAST = 4096  # the R53 floor: keeps PBKDF2 cheap
PASSWORD = "correct horse battery staple"
PSK_KEY = bytes(range(32))


# =========================================================================== certificates


@dataclass(frozen=True)
class Pki:
    """One conformant test PKI: what the certificate properties build their inputs from."""

    pki: TestPKI
    server: IssuedCert
    client: IssuedCert
    validator: ChainValidator
    ders: dict[str, bytes]

    def key(self, name: str) -> ec.EllipticCurvePrivateKey:
        ca = self.pki.root_ca if name == "root" else self.pki.tls_ca
        key = ca.private_key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


@pytest.fixture(scope="module")
def pki() -> Pki:
    p = TestPKI()
    server, client = p.server_cert(), p.client_cert()
    ders = {
        "server": server.cert.public_bytes(DER),
        "client": client.cert.public_bytes(DER),
        "nf": p.nf_cert().cert.public_bytes(DER),
        "tls-ca": p.tls_ca.cert.public_bytes(DER),
        "root": p.root_ca.cert.public_bytes(DER),
    }
    validator = ChainValidator(p.trust_anchor_pem, crls=[p.crl()])
    # The controls: the genuine chains are accepted, so "never accepted" below is not vacuous.
    validator.verify(server.cert, [p.tls_ca.cert], role="server")
    validator.verify(client.cert, [p.tls_ca.cert], role="client")
    return Pki(p, server, client, validator, ders)


#: How one chain candidate is made: a genuine certificate, a mutated one, a TLS CA mutated and
#: re-signed by the root, or random bytes.
Recipe = tuple[str, str, list[Op], bytes]
_NAMES = st.sampled_from(["server", "client", "nf", "tls-ca", "root"])
_GENUINE: st.SearchStrategy[Recipe] = st.tuples(
    st.just("genuine"), _NAMES, st.just([]), st.just(b"")
)
_ODD: st.SearchStrategy[Recipe] = st.one_of(
    st.tuples(st.just("mutated"), _NAMES, OPS, st.just(b"")),
    st.tuples(st.just("resigned"), st.just("tls-ca"), OPS, st.just(b"")),
    st.tuples(st.just("random"), st.just(""), st.just([]), st.binary(max_size=600)),
)
#: Mostly genuine candidates: one unparseable candidate ends the verification early, so lists
#: of mostly usable ones are what make path building, profiles and revocation run.
RECIPES = weighted((3, _GENUINE), (1, _ODD))


def build(m: Pki, recipe: Recipe) -> bytes:
    kind, name, ops, blob = recipe
    if kind == "genuine":
        return m.ders[name]
    if kind == "mutated":
        return mutate(m.ders[name], ops)
    if kind == "resigned":
        return resign(m.ders[name], ops, m.key("root"))
    return blob


@examples(150)
@given(
    leaf=RECIPES,
    intermediates=st.lists(RECIPES, max_size=4),
    role=st.sampled_from(["server", "client"]),
)
def test_chain_building_over_mixed_candidates(
    pki: Pki, leaf: Recipe, intermediates: list[Recipe], role: str
) -> None:
    """R16, R24: ChainValidator.verify with an arbitrary leaf and an arbitrary list of
    intermediates (genuine, mutated, re-signed, random, duplicated, in any order) returns a
    verified chain or raises a typed error; an accepted leaf is a genuine certificate, and
    every element of an accepted chain lints compliant (R11)."""
    data = build(pki, leaf)
    result = typed(
        lambda: pki.validator.verify(data, [build(pki, r) for r in intermediates], role=role)
    )
    event(f"verify: {type(result).__name__}")
    if isinstance(result, Capif8secError):
        return
    assert data in (pki.ders["server"], pki.ders["client"], pki.ders["nf"])
    assert result.leaf.public_bytes(DER) == data
    assert all(report.compliant for report in result.reports), result.reports


_PROFILE_ROLES = [
    ("tls-entity", "server"),
    ("tls-entity", "client"),
    ("sba-nf", "server"),
    ("sba-nf", "client"),
    ("sba-nf", "both"),
    ("tls-ca", None),
    ("interconnection-ca", None),
]


@examples(100)
@given(seed=st.sampled_from(["server", "client", "nf", "tls-ca"]), ops=OPS)
def test_resigned_mutants_lint_under_every_profile(pki: Pki, seed: str, ops: list[Op]) -> None:
    """R11, R22: a mutated TBS re-signed by its real issuer, linted under every profile and
    role, gives a Report about exactly these bytes or a CertificateParseError; validated as a
    TLS CA under the genuine server leaf, it is accepted only when it lints compliant."""
    issuer = "root" if seed == "tls-ca" else "tls-ca"
    data = resign(pki.ders[seed], ops, pki.key(issuer))
    for profile, role in _PROFILE_ROLES:
        report = typed(functools.partial(lint, data, profile, role, issuer=pki.ders[issuer]))
        if isinstance(report, Capif8secError):
            assert isinstance(report, CertificateParseError), report
            continue
        assert isinstance(report, Report)
        assert report.fingerprint_sha256 == hashlib.sha256(data).hexdigest()
        assert report.compliant == (not report.errors)
    if seed != "tls-ca":
        return
    verified = typed(lambda: pki.validator.verify(pki.server.cert, [data], role="server"))
    if isinstance(verified, Capif8secError):
        return
    assert verified.chain[1].public_bytes(DER) == data
    assert lint(data, "tls-ca", issuer=pki.ders["root"]).compliant


# =========================================================================== policy files

POLICY_SEED = '''\
# capif8sec policy (the seed the line-level mutations start from)
version = "fuzz-1"
legacy_cn = false

[[rule]]
id = "rof-a"
identities = [
    "uri:urn:capif:rof:rof-a",   # the ROF certificate
    "dns:*.rof-a.example",
]
owners = ["msisdn-4917*", "extid-alice@rof-a.example"]
purposes = ["service-assurance", "*qos*"]
asps = ["asp-1"]
apps = ["app-?"]
operations = ["authorize", "revoke"]
methods = ["certificate"]
description = """two
lines"""

[[rule]]
id = "rof-b"
identities = ["scram:rof-b", 'psk:rof-b']
owners = "msisdn-491700000002"
operations = ["authorize"]
methods = ["password", "psk", "psk-in-channel"]

[[ccf]]
id = "home-ccf"
identities = ["dns:ccf.capif.example", "ip:192.0.2.7"]
owners = ["*"]
'''

_PEERS = [
    AuthenticatedPeer("rof-b", Method.PASSWORD, {}),
    AuthenticatedPeer("rof-b", Method.PSK, {}),
    AuthenticatedPeer(
        "urn:capif:rof:rof-a",
        Method.CERTIFICATE,
        {},
        TlsPeer(
            "server",
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "certificate",
            CertificateIdentities(("urn:capif:rof:rof-a",), ("x.rof-a.example",)),
            None,
            None,
            None,
        ),
    ),
]
_REQUESTS = [
    PolicyRequest("authorize", "msisdn-491700000002"),
    PolicyRequest("revoke", "msisdn-4917123456", "service-assurance", "asp-1", "app-7"),
    PolicyRequest("authorize", "extid-alice@rof-a.example", "low-qos-x", "asp-1", "app-1"),
]


def _check_policy_outcome(result: Policy | Capif8secError, text: str) -> None:
    """A loaded policy drives an engine; a refusal names every issue with a plausible line."""
    event(f"policy: {type(result).__name__}")
    if isinstance(result, Capif8secError):
        assert isinstance(result, PolicyFileError), result
        assert result.issues
        lines = text.count("\n") + 1
        for issue in result.issues:
            assert issue.line is None or 1 <= issue.line <= lines, (issue, lines)
            assert issue.message and str(issue)
        return
    engine = PolicyEngine(result)
    for peer in _PEERS:
        for request in _REQUESTS:
            assert isinstance(engine.evaluate(peer, request).allowed, bool)
            assert isinstance(engine.evaluate_ccf(peer, request).allowed, bool)


def test_policy_seed_is_valid() -> None:
    """The mutation seed itself loads, and allows something: the mutants start from a valid,
    non-trivial policy."""
    policy = loads_policy(POLICY_SEED)
    assert len(policy.rules) == 2 and len(policy.ccf_rules) == 1
    engine = PolicyEngine(policy)
    assert engine.evaluate(_PEERS[0], _REQUESTS[0]).allowed


@examples(200)
@given(text=st.text(max_size=400))
def test_policy_arbitrary_text(text: str) -> None:
    """R56, R59: arbitrary text as a policy file: a Policy or a PolicyFileError naming lines."""
    _check_policy_outcome(typed(lambda: loads_policy(text, source="fuzz.toml")), text)


@examples(100)
@given(data=st.binary(max_size=400))
def test_policy_arbitrary_bytes(data: bytes) -> None:
    """R56, R59: arbitrary bytes (invalid UTF-8 included) as a policy file."""
    text = data.decode("utf-8", "replace")
    _check_policy_outcome(typed(lambda: loads_policy(data, source="fuzz.toml")), text)


@examples(200)
@given(ops=LINE_OPS)
def test_policy_line_mutations(ops: list[LineOp]) -> None:
    """R56, R57, R59: a valid policy with lines dropped, repeated, swapped, replaced or spliced
    (structure mostly intact, so validation and the line scan run on near-valid input)."""
    text = mutate_lines(POLICY_SEED, ops)
    _check_policy_outcome(typed(lambda: loads_policy(text, source="fuzz.toml")), text)


def _toml(value: Any) -> str:
    """A TOML rendering of a generated value (strings as JSON: a TOML basic string, mostly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
_IDENTITY_ITEMS = st.one_of(
    st.sampled_from(["uri:urn:capif:rof:rof-a", "psk:rof-b", "scram:rof-b", "dns:*.rof-a.example"]),
    st.sampled_from(
        [
            "uri:urn:capif:rof:rof-a",
            "dns:rof.example",
            "dns:*.rof.example",
            "dns:R\u00e9sum\u00e9.example",
            "ip:192.0.2.7",
            "ip:2001:db8::1",
            "psk:rof-1",
            "scram:alice",
            "cn:rof-1",
            "uri:HTTPS://Ex\u00e4mple.com:443/p?q",
            "psk:*",
            "dns:xn--zz",
            "ip:*",
            "uri:",
        ]
    ),
    st.builds("{}:{}".format, st.sampled_from([*IDENTITY_KINDS, "x"]), st.text(max_size=16)),
)
_OWNER_ITEMS = st.one_of(
    st.sampled_from(["*", "msisdn-4917*", "msisdn-491700000002", "extid-a@b.example", "x*"]),
    st.from_regex(r"msisdn-[0-9*?]{1,16}|extid-[a-z*?]{1,8}@[a-z.]{1,8}", fullmatch=True),
    st.text(max_size=16),
)
_TEXT_ITEMS = st.one_of(st.sampled_from(["*", "a?c", "service-assurance"]), st.text(max_size=12))
_OPERATION_ITEMS = st.one_of(st.sampled_from(["authorize", "revoke", "query"]), st.text(max_size=8))
_METHOD_ITEMS = st.one_of(
    st.sampled_from(["certificate", "psk", "psk-in-channel", "password"]), st.text(max_size=8)
)


def _field(items: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(items, st.lists(items, max_size=4), _SCALARS, st.lists(_SCALARS, max_size=2))


_VALID_RULE = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["r1", "r2", "rof-a", "home-ccf"]),
        "identities": st.lists(_IDENTITY_ITEMS, min_size=1, max_size=3),
        "owners": st.lists(_OWNER_ITEMS, min_size=1, max_size=2),
        "operations": st.lists(st.sampled_from(["authorize", "revoke", "query"]), min_size=1),
        "methods": st.lists(
            st.sampled_from(["certificate", "psk", "psk-in-channel", "password"]), min_size=1
        ),
    },
    optional={
        "purposes": st.lists(_TEXT_ITEMS, min_size=1, max_size=2),
        "asps": st.lists(_TEXT_ITEMS, min_size=1, max_size=2),
        "apps": st.lists(_TEXT_ITEMS, min_size=1, max_size=2),
        "description": st.text(min_size=1, max_size=20),
    },
)
_ANY_RULE = st.fixed_dictionaries(
    {},
    optional={
        "id": _field(st.one_of(st.sampled_from(["r1", "r2", "rof-a"]), st.text(max_size=10))),
        "identities": _field(_IDENTITY_ITEMS),
        "owners": _field(_OWNER_ITEMS),
        "purposes": _field(_TEXT_ITEMS),
        "asps": _field(_TEXT_ITEMS),
        "apps": _field(_TEXT_ITEMS),
        "operations": _field(_OPERATION_ITEMS),
        "methods": _field(_METHOD_ITEMS),
        "description": _field(st.text(max_size=20)),
        "unknown": _SCALARS,
    },
)
_RULE = weighted((2, _VALID_RULE), (1, _ANY_RULE))


@st.composite
def policy_documents(draw: st.DrawFn) -> str:
    """A generated TOML policy: top-level keys, [[rule]] and [[ccf]] tables of mostly
    plausible values, multi-line arrays now and then (the line scan follows them)."""
    out: list[str] = []
    top = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "version": st.one_of(st.text(max_size=10), _SCALARS),
                "legacy_cn": st.one_of(st.booleans(), _SCALARS),
                "extra": _SCALARS,
            },
        )
    )
    out += [f"{key} = {_toml(value)}" for key, value in top.items()]
    for kind in draw(st.lists(st.sampled_from(["rule", "ccf"]), max_size=4)):
        out.append(f"[[{kind}]]")
        for key, value in draw(_RULE).items():
            if isinstance(value, list) and draw(st.booleans()):
                out.append(f"{key} = [")
                out += [f"    {_toml(v)}," for v in value]
                out.append("]")
            else:
                out.append(f"{key} = {_toml(value)}")
    return "\n".join(out) + "\n"


@examples(200)
@given(text=policy_documents())
def test_policy_generated_documents(text: str) -> None:
    """R56, R57, R59: generated policies (valid and invalid identities, owners, operations,
    methods, wrong types, unknown keys, multi-line arrays): a Policy that drives the engine, or
    a PolicyFileError whose every issue names a line inside the file."""
    _check_policy_outcome(typed(lambda: loads_policy(text, source="fuzz.toml")), text)


def _glob_reference(pattern: str, value: str) -> bool:
    """``*`` any run, every other character itself (``?`` too): the textbook
    O(len(pattern) * len(value)) table."""
    row = [True] + [False] * len(value)
    for c in pattern:
        new = [row[0] and c == "*"] + [False] * len(value)
        for j in range(1, len(value) + 1):
            if c == "*":
                new[j] = new[j - 1] or row[j]
            else:
                new[j] = row[j - 1] and c == value[j - 1]
        row = new
    return row[-1]


_GLOB = st.text(alphabet="*?ab", min_size=1, max_size=12)


@examples(150)
@given(
    dimension=st.sampled_from(["identity", "owner", "purpose", "asp", "app"]),
    patterns=st.lists(_GLOB, min_size=1, max_size=3),
    value=st.text(alphabet="ab", min_size=1, max_size=256),
)
@example(dimension="purpose", patterns=["*a*a*a*a*b"], value="a" * 256)
@example(dimension="identity", patterns=["*a*a*a*a*a*b"], value="a" * 256)
@example(dimension="owner", patterns=["a*a*a*a*a*a*b"], value="a" * 120)
def test_policy_patterns_match_like_globs_in_bounded_time(
    dimension: str, patterns: list[str], value: str
) -> None:
    """R59: a policy pattern (``*``; ``?`` is literal) against a value the peer controls -- a
    SCRAM username, or the owner, purpose, ASP or application of a message -- is decided in
    bounded time and exactly as a glob.  The regression examples took 12 s to minutes each
    (catastrophic regex backtracking on ``.*a.*a.*a...``) before the engine's patterns became
    linear."""
    rule: dict[str, Any] = {
        "id": "r",
        "identities": ["scram:alice"],
        "owners": ["*"],
        "operations": ["authorize"],
        "methods": ["password"],
    }
    username, request = "alice", PolicyRequest("authorize", "msisdn-12345")
    prefix, suffix = {"identity": ("scram:", ""), "owner": ("extid-", "@x")}.get(
        dimension, ("", "")
    )
    if dimension == "identity":
        assume(all(p.replace("*", "") for p in patterns))
        rule["identities"] = [f"scram:{p}" for p in patterns]
        username = value
    elif dimension == "owner":
        value = value[:128]  # the longest extid local part
        rule["owners"] = [f"extid-{p}@x" for p in patterns]
        request = PolicyRequest("authorize", f"extid-{value}@x")
    else:
        rule[f"{dimension}s"] = patterns
        request = PolicyRequest("authorize", "msisdn-12345", **{dimension: value})
    text = "[[rule]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in rule.items())
    engine = PolicyEngine(loads_policy(text))
    decision = engine.evaluate(AuthenticatedPeer(username, Method.PASSWORD, {}), request)
    expected = any(_glob_reference(prefix + p + suffix, prefix + value + suffix) for p in patterns)
    assert decision.allowed == expected


# =========================================================================== identities

_DNS_LIKE = st.builds(
    ".".join,
    st.lists(
        st.one_of(
            st.sampled_from(["a", "xn--", "xn--nxasmq6b", "xn--zz", "*", "-a", "A", "\u00e9", ""]),
            st.text(alphabet=string.ascii_letters + string.digits + "-_*", max_size=8),
        ),
        max_size=5,
    ),
)
_URI_LIKE = st.builds(
    "{}:{}{}{}".format,
    st.sampled_from(["urn", "HTTPS", "h+t.p", "1x", "", "uri"]),
    st.sampled_from(["", "//", "///"]),
    st.sampled_from(["", "user@", "[::1]", "[fe80::1", "H\u00e9st", "host:80"]),
    st.text(max_size=20),
)
_IP_LIKE = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["1.2.3", "fe80::1%eth0", "::ffff:1.2.3.4", "01.2.3.4", "1.2.3.4/8"]),
)
IDENTITY_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}:{}".format,
        st.sampled_from([*IDENTITY_KINDS, "DNS", "x", ""]),
        st.one_of(st.text(max_size=40), _DNS_LIKE, _URI_LIKE, _IP_LIKE),
    ),
)


@examples(300)
@given(
    text=IDENTITY_TEXT, reference=st.one_of(_DNS_LIKE, _URI_LIKE, _IP_LIKE, st.text(max_size=30))
)
def test_identity_parsing(text: str, reference: str) -> None:
    """R45, R56, R57: ``kind:value`` identities (policy files) and reference identities parse to
    a typed identity or a UsageError; parse_identity and identity_key agree, normalization is
    idempotent, and matching either answers or refuses typed."""
    parsed = typed(lambda: parse_identity(text))
    event(f"identity: {type(parsed).__name__}")
    key = typed(lambda: identity_key(text))
    assert isinstance(parsed, Capif8secError) == isinstance(key, Capif8secError), (parsed, key)
    if isinstance(parsed, Capif8secError):
        assert isinstance(parsed, UsageError) and isinstance(key, UsageError)
    else:
        assert key == parsed.key
        assert parse_identity(parsed.key).key == parsed.key
    ref = typed(lambda: reference_identity(reference))
    if isinstance(ref, Capif8secError):
        assert isinstance(ref, UsageError)
        return
    if not isinstance(parsed, Capif8secError):
        outcome = typed(lambda: matches(parsed, ref))
        assert isinstance(outcome, bool | UsageError)


_SAN_TEXT = st.one_of(_DNS_LIKE, _URI_LIKE, st.text(max_size=30))


@examples(200)
@given(
    uris=st.lists(_SAN_TEXT, max_size=3),
    dns=st.lists(_SAN_TEXT, max_size=3),
    ips=st.lists(st.ip_addresses(), max_size=2),
    cn=st.one_of(st.none(), _SAN_TEXT),
    legacy_cn=st.booleans(),
    reference=st.one_of(_DNS_LIKE, _URI_LIKE, _IP_LIKE),
)
def test_certificate_identities_to_policy_keys(
    uris: list[str],
    dns: list[str],
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    cn: str | None,
    legacy_cn: bool,
    reference: str,
) -> None:
    """R56, R57: whatever a certificate's SAN holds, the policy keys of the peer are computed
    without error, equal the keys of its typed identities (minus wildcard DNS-IDs, the fast
    path agrees with the general one), and reference matching answers a plain bool."""
    ids = CertificateIdentities(tuple(uris), tuple(dns), tuple(ips), cn)
    peer_tls = TlsPeer(
        "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate", ids, None, None, None
    )
    peer = AuthenticatedPeer(ids.primary() or "?", Method.CERTIFICATE, {}, peer_tls)
    keys = typed(lambda: policy_keys(peer, legacy_cn=legacy_cn))
    typed_ids = typed(lambda: identities_of_peer(peer, legacy_cn=legacy_cn))
    assert not isinstance(keys, Capif8secError) and not isinstance(typed_ids, Capif8secError)
    expected = tuple(
        i.key for i in typed_ids if not (isinstance(i, DnsId) and i.name.startswith("*."))
    )
    assert keys == expected
    assert isinstance(matches_reference(ids, reference, legacy_cn=legacy_cn), bool)


# =========================================================================== CAPIF-8 JSON

_OWNER = "msisdn-491700000001"
_MESSAGES: list[tuple[type[Any], dict[str, Any]]] = [
    (
        ResourceOwnerAuthorizationRequest,
        {
            "requestId": "req-0001",
            "apiInvokerInfo": {"apiInvokerId": "INV-42", "apiInvokerName": "Weather app"},
            "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
            "purposeOfDataProcessing": "service-assurance",
            "resOwnerId": _OWNER,
            "requestedItems": [
                {"apiName": "3gpp-monitoring-event", "operations": ["subscribe", "read"]},
                {"apiName": "3gpp-as-session-with-qos", "resource": "sessions"},
            ],
            "expiry": "2026-12-31T00:00:00Z",
        },
    ),
    (
        ResourceOwnerAuthorizationResponse,
        {
            "requestId": "req-0001",
            "resOwnerId": _OWNER,
            "decisions": [
                {"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]},
                {"apiName": "3gpp-as-session-with-qos", "resource": "sessions", "granted": False},
            ],
            "expiry": "2026-12-01T00:00:00+01:00",
        },
    ),
    (
        RevocationNotification,
        {
            "resOwnerId": _OWNER,
            "apiInvokerId": "INV-42",
            "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
            "items": [{"apiName": "3gpp-monitoring-event"}],
            "reason": "the owner withdrew consent",
        },
    ),
]


@examples(300)
@given(index=st.integers(0, len(_MESSAGES) - 1), ops=OPS, indent=st.booleans())
def test_capif8_json_mutated_byte_by_byte(index: int, ops: list[Op], indent: bool) -> None:
    """R56, R59: a valid CAPIF-8 message with bytes flipped, inserted, deleted, duplicated or cut
    (broken UTF-8, escapes, numbers, nesting, duplicate keys): the message or a MessageError,
    and an accepted message round-trips."""
    model, doc = _MESSAGES[index]
    original = json.dumps(doc, indent=2 if indent else None, ensure_ascii=False).encode()
    model.from_json(original)  # the control
    data = mutate(original, ops)
    message = typed(lambda: model.from_json(data))
    event(f"message: {type(message).__name__}")
    if isinstance(message, Capif8secError):
        assert isinstance(message, MessageError), message
        return
    assert model.from_json(message.to_json()) == message


# =========================================================================== SCRAM

_VERIFIER = make_verifier("rof-1", PASSWORD, iterations=FAST)
_UNICODE_VERIFIER = make_verifier("r\u00f6f-\u2160", PASSWORD, iterations=FAST)
_SCRAM_USERS = {v.username: v for v in (_VERIFIER, _UNICODE_VERIFIER)}
_SCRAM_AUTH = ScramAuthenticator(_SCRAM_USERS.get, unknown_user_iterations=FAST)


def _escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ",")
_GS2 = st.sampled_from(
    [
        "p=tls-server-end-point,",
        "p=tls-unique,",
        "p=,",
        "n,",
        "y,",
        "p=tls-server-end-point,a=x",
        "",
    ]
)


@examples(200)
@given(
    gs2=weighted((3, st.just("<matching>")), (1, _GS2)),
    username=weighted(
        (1, st.sampled_from(["rof-1", "r\u00f6f-\u2160", "ro\u00adf-1", "\u0627\u0644\u0639"])),
        (2, st.text(max_size=40)),
    ),
    escape=st.booleans(),
    nonce=weighted((3, st.text(alphabet=_PRINTABLE, min_size=1, max_size=40)), (1, st.text())),
    extensions=st.lists(st.tuples(st.sampled_from("mxz"), st.text(max_size=8)), max_size=2),
    plus=st.booleans(),
    proof=st.binary(min_size=32, max_size=32),
)
def test_scram_structured_client_messages(
    gs2: str,
    username: str,
    escape: bool,
    nonce: str,
    extensions: list[tuple[str, str]],
    plus: bool,
    proof: bytes,
) -> None:
    """R52-R54: client-first messages in the right shape around arbitrary Unicode usernames
    (SASLprep: mapping, NFKC, prohibited and bidirectional characters), nonces and extensions;
    then a well-formed client-final with a wrong proof.  A challenge or AuthenticationFailed,
    and the final never completes the exchange."""
    binding: ChannelBinding | AllowPlainScram = BINDING if plus else ALLOW_PLAIN_SCRAM
    if gs2 == "<matching>":
        gs2 = "p=tls-server-end-point," if plus else "n,"
    server = _SCRAM_AUTH.exchange(binding)
    name = _escape(username) if escape else username
    first = f"{gs2},n={name},r={nonce}" + "".join(f",{k}={v}" for k, v in extensions)
    reply = typed(lambda: server.receive(first.encode("utf-8", "surrogatepass")))
    event(f"client-first: {type(reply).__name__}")
    if isinstance(reply, Capif8secError):
        assert isinstance(reply, AuthenticationFailed) and str(reply) == "authentication failed"
        return
    assert reply is not None and reply.startswith(f"r={nonce}".encode())
    combined = reply.decode().split(",")[0][2:]
    header = gs2 if gs2.endswith(",") else gs2 + ","
    cbind = header.encode() + (BINDING.data if plus else b"")
    final = (
        f"c={base64.b64encode(cbind).decode()},r={combined},p={base64.b64encode(proof).decode()}"
    )
    with pytest.raises(AuthenticationFailed):
        server.receive(final.encode())
    assert not server.complete


@examples(150)
@given(
    suffix=weighted(
        (3, st.text(alphabet=_PRINTABLE, min_size=1, max_size=30)), (1, st.text(max_size=10))
    ),
    salt=weighted(
        (3, st.binary(min_size=1, max_size=40).map(lambda b: base64.b64encode(b).decode())),
        (1, st.text(max_size=12)),
    ),
    iterations=st.one_of(
        weighted((3, st.integers(FAST - 2, 2 * FAST + 2).map(str)), (1, st.just("4096"))),
        st.integers(-10, 10**12).map(str),
        st.sampled_from(["4096", "04096", "+4096", "4096 ", "\u0664\u0660\u0669\u0666", "9" * 30]),
        st.text(max_size=6),
    ),
    extensions=st.one_of(
        st.just([]), st.lists(st.tuples(st.sampled_from("emxv"), st.text(max_size=8)), max_size=2)
    ),
    server_final=st.one_of(
        st.binary(min_size=32, max_size=32).map(lambda b: "v=" + base64.b64encode(b).decode()),
        st.text(max_size=60),
    ),
)
def test_scram_structured_server_messages_at_the_client(
    suffix: str,
    salt: str,
    iterations: str,
    extensions: list[tuple[str, str]],
    server_final: str,
) -> None:
    """R52-R54: server-first messages in the right shape (the client's nonce plus anything,
    any salt, any iteration count text -- huge, signed, non-ASCII digits) and any server-final:
    a client-final or AuthenticationFailed in bounded time (no PBKDF2 beyond max_iterations),
    and the client never completes against a server that does not know the password."""
    client = ScramClient("rof-1", PASSWORD, BINDING, max_iterations=2 * FAST, nonce="fuzzclient")
    client.first()
    server_first = f"r=fuzzclient{suffix},s={salt},i={iterations}" + "".join(
        f",{k}={v}" for k, v in extensions
    )
    final = typed(lambda: client.final(server_first.encode("utf-8", "surrogatepass")))
    event(f"server-first: {type(final).__name__}")
    if isinstance(final, Capif8secError):
        assert isinstance(final, AuthenticationFailed)
        return
    assert final.startswith(b"c=")
    with pytest.raises(AuthenticationFailed):
        client.verify(server_final.encode("utf-8", "surrogatepass"))
    assert not client.complete


# =========================================================================== RFC 7804 headers

_PSK_STORE = MemoryStore()
_PSK_STORE.add_psk(PskCredential(b"rof-1", PSK_KEY, CCF, key_id="k1"))
_PSK_AUTH = InChannelPskAuthenticator(_PSK_STORE, CCF)


def _psk_http() -> HttpExchangeServer:
    return http_psk_server(_PSK_AUTH.exchange, realm="capif8")


def _scram_http() -> HttpScramServer:
    return HttpScramServer(_SCRAM_AUTH.exchange, realm="capif8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_IN_CHANNEL_FIRST = st.one_of(
    st.builds(
        lambda ident, nonce: f"v=1,n={_b64(ident)},r={_b64(nonce)}".encode(),
        st.one_of(st.just(b"rof-1"), st.binary(max_size=40)),
        st.binary(min_size=30, max_size=34),
    ),
    st.binary(max_size=80),
)
_SCRAM_FIRST = st.builds(
    lambda gs2, user, nonce: f"{gs2},n={user},r={nonce}".encode(),
    _GS2,
    st.sampled_from(["rof-1", "nobody", "=2C", ""]),
    st.text(alphabet=_PRINTABLE, min_size=1, max_size=20),
)
_PARAM_VALUE = st.one_of(
    st.one_of(_IN_CHANNEL_FIRST, _SCRAM_FIRST).map(_b64),
    st.binary(max_size=40).map(_b64),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=64),
    st.text(max_size=12).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(max_size=12),
)
_PARAM_NAME = st.sampled_from(["realm", "data", "sid", "ttl", "DATA", "x", ""])


@st.composite
def authorization_values(draw: st.DrawFn) -> str:
    """``SCHEME name=value, ...`` with schemes and parameters near what the servers expect:
    half of them a well-formed first request (realm, base64 of a plausible first message)
    with extra, repeated or reordered parameters."""
    if draw(st.booleans()):
        scheme, kind = draw(
            st.sampled_from(
                [(PSK_SCHEME, "psk"), ("SCRAM-SHA-256-PLUS", "plus"), ("scram-sha-256", "plain")]
            )
        )
        nonce = draw(st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES))
        first = (
            f"v=1,n={_b64(b'rof-1')},r={_b64(nonce)}"
            if kind == "psk"
            else f"{'p=tls-server-end-point' if kind == 'plus' else 'n'},,n=rof-1,r={nonce.hex()}"
        )
        params = [("realm", '"capif8"'), ("data", _b64(first.encode()))]
        if draw(st.booleans()):
            params += draw(st.lists(st.tuples(_PARAM_NAME, _PARAM_VALUE), max_size=2))
        params = draw(st.permutations(params))
        return f"{scheme} " + ", ".join(f"{k}={v}" for k, v in params)
    scheme = draw(
        st.sampled_from(
            [PSK_SCHEME, PSK_SCHEME.lower(), "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "Basic", ""]
        )
    )
    params = draw(st.lists(st.tuples(_PARAM_NAME, _PARAM_VALUE), max_size=4))
    sep = draw(st.sampled_from([", ", ",", " , ", ",\t", " "]))
    return f"{scheme} " + sep.join(f"{k}={v}" for k, v in params)


@examples(200)
@given(header=authorization_values(), second=st.binary(max_size=80))
def test_http_structured_authorization(header: str, second: bytes) -> None:
    """R52, R54: Authorization values in the RFC 7804 shape (both schemes, realm, data, sid,
    unknown and repeated parameters, quoted strings, base64 of near-valid first messages) at
    the CAPIF8-PSK and the SCRAM server: a challenge or AuthenticationFailed; a challenge's sid
    followed by arbitrary data never authenticates."""
    bindings: tuple[ChannelBinding | AllowPlainScram, ...] = (BINDING, ALLOW_PLAIN_SCRAM)
    for server, binding in itertools.product((_psk_http(), _scram_http()), bindings):
        step = typed(functools.partial(server.handle, header, binding))
        event(f"{type(server).__name__}: {type(step).__name__}")
        if isinstance(step, Capif8secError):
            assert isinstance(step, AuthenticationFailed), step
            continue
        assert isinstance(step, HttpChallenge)
        sid = step.www_authenticate.split("sid=", 1)[1].split(",", 1)[0]
        scheme = step.www_authenticate.split(" ", 1)[0]
        final = f"{scheme} sid={sid}, data={_b64(second)}"
        with pytest.raises(AuthenticationFailed):
            server.handle(final, binding)
        if second:  # well-formed data: the sid was used up (single use, success or not)
            assert server.pending == 0


@examples(150)
@given(header=st.one_of(st.text(max_size=300), authorization_values()))
def test_http_psk_scheme_arbitrary_headers(header: str) -> None:
    """R54: arbitrary Authorization text at the CAPIF8-PSK server (the scheme the existing SCRAM
    header fuzzing does not reach): AuthenticationFailed or a challenge, never a peer."""
    server = _psk_http()
    bindings: tuple[ChannelBinding | AllowPlainScram, ...] = (BINDING, ALLOW_PLAIN_SCRAM)
    for binding in bindings:
        step = typed(functools.partial(server.handle, header, binding))
        assert isinstance(step, AuthenticationFailed | HttpChallenge), step


_CHALLENGE_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(
        "{} sid={}, data={}".format,
        st.sampled_from([PSK_SCHEME, "SCRAM-SHA-256-PLUS", "x"]),
        st.text(alphabet=string.ascii_letters + string.digits, min_size=16, max_size=20),
        st.one_of(
            st.binary(min_size=30, max_size=70).map(lambda b: _b64(b"r=" + _b64(b).encode())),
            st.binary(max_size=60).map(_b64),
        ),
    ),
)


@examples(150)
@given(challenge=_CHALLENGE_TEXT, info=st.text(max_size=120))
def test_http_clients_on_arbitrary_server_headers(challenge: str, info: str) -> None:
    """R52, R54: the ROF side parses what the server sends (WWW-Authenticate,
    Authentication-Info): a next header or AuthenticationFailed, and never a verified server
    without the key or password."""
    psk = HttpPskClient(
        InChannelPskClient(credential=PskCredential(b"rof-1", PSK_KEY, CCF), binding=BINDING)
    )
    psk.first()
    reply = typed(lambda: psk.final(challenge))
    if not isinstance(reply, Capif8secError):
        assert isinstance(reply, str)
        with pytest.raises(AuthenticationFailed):
            psk.verify(info)
    else:
        assert isinstance(reply, AuthenticationFailed)
    scram = HttpScramClient(ScramClient("rof-1", PASSWORD, BINDING, max_iterations=2 * FAST))
    outcome = typed(lambda: scram.first(challenge))
    assert isinstance(outcome, str | AuthenticationFailed)


# =========================================================================== in-channel PSK

_CNONCE = bytes(range(100, 132))


@examples(200)
@given(
    server_first=st.one_of(
        st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES + 2).map(
            lambda b: b"r=" + _b64(_CNONCE + b).encode()
        ),
        st.binary(max_size=200),
        st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    server_final=st.one_of(
        st.binary(min_size=32, max_size=32).map(lambda b: b"v=" + _b64(b).encode()),
        st.binary(max_size=100),
    ),
)
def test_in_channel_client_on_arbitrary_server_messages(
    server_first: bytes, server_final: bytes
) -> None:
    """R45, R54: the ROF side of the in-channel PSK proof on any server-first (well formed with
    the right nonce prefix, or not) and any server-final: a client-final or
    AuthenticationFailed, and a server without the key is never verified."""
    client = InChannelPskClient(
        credential=PskCredential(b"rof-1", PSK_KEY, CCF), binding=BINDING, _client_nonce=_CNONCE
    )
    client.first()
    final = typed(lambda: client.final(server_first))
    event(f"server-first: {type(final).__name__}")
    if isinstance(final, Capif8secError):
        assert isinstance(final, AuthenticationFailed)
        return
    assert final.startswith(b"r=")
    with pytest.raises(AuthenticationFailed):
        client.verify(server_final)


# =========================================================================== credential files


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the file properties write their inputs to (module scope: hypothesis runs
    every example of a test inside one call of it)."""
    return tmp_path_factory.mktemp("fuzz-files")


_COUNTER = itertools.count()


def _fresh(directory: Path) -> Path:
    """A new database path (SQLite leaves -wal/-shm files beside a database it could not open)."""
    for old in directory.glob("db-*"):
        old.unlink()
    return directory / f"db-{next(_COUNTER)}.db"


_HEX_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=string.hexdigits + " \t\n\r", max_size=80),
    st.binary(min_size=30, max_size=34).map(lambda b: f"  {b.hex()}\n"),
    st.sampled_from(["", "\u0660" * 64, "0x" + "11" * 32, "11" * 32 + "\x00"]),
)


@examples(150)
@given(text=_HEX_TEXT, raw=st.binary(max_size=80))
def test_key_encryption_key_text_and_file(scratch: Path, text: str, raw: bytes) -> None:
    """R44, R53: a key-encryption key as text (environment) or file (any bytes, not ASCII
    included): a 32-byte key or a UsageError that does not echo the input."""
    kek = typed(lambda: KeyEncryptionKey.from_hex(text))
    if isinstance(kek, Capif8secError):
        assert isinstance(kek, UsageError)
        if len(text.strip()) >= 8:
            assert text.strip() not in str(kek)
    else:
        assert KeyEncryptionKey.from_hex(text.strip().lower()) == kek
    path = scratch / "kek"
    path.write_bytes(raw)
    from_file = typed(lambda: KeyEncryptionKey.from_file(path))
    assert isinstance(from_file, KeyEncryptionKey | UsageError)


@dataclass(frozen=True)
class Database:
    """A pristine credential database (one PSK, one SCRAM verifier) to copy and alter."""

    path: Path
    kek: KeyEncryptionKey
    psk: PskCredential


_DB_VERIFIER = make_verifier("alice", PASSWORD, iterations=FAST)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Database:
    path = tmp_path_factory.mktemp("db") / "pristine.db"
    kek = KeyEncryptionKey.generate()
    cred = PskCredential(
        b"rof-1", PSK_KEY, CCF, key_id="k1", validity=Validity(not_after=NOW + dt.timedelta(days=1))
    )
    with SqliteStore(path, kek) as store:
        store.add_psk(cred)
        store.add_scram(_DB_VERIFIER, key_id="pw-1")
    return Database(path, kek, cred)


_COLUMNS = {
    "psk": [
        "identity",
        "ccf_identity",
        "key_id",
        "fingerprint",
        "nonce",
        "ciphertext",
        "not_before",
        "not_after",
        "revoked_at",
        "added_at",
    ],
    "scram": [
        "username",
        "key_id",
        "salt",
        "iterations",
        "nonce",
        "ciphertext",
        "not_before",
        "not_after",
        "revoked_at",
        "added_at",
    ],
    "meta": ["name", "value"],
    "schema_version": ["version"],
}
_SQL_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**40, 2**62, 4096]),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.binary(min_size=1, max_size=3).map(lambda b: b"\xff" + b),
)
_ALTERATION = st.tuples(st.sampled_from(sorted(_COLUMNS)), st.integers(0, 9), _SQL_VALUES)


def _use_store(db: Database, path: Path) -> tuple[list[PskCredential], Any, list[Any]]:
    with SqliteStore(path, db.kek, create=False) as store:
        return (
            list(store.psk_credentials(b"rof-1", at=NOW)),
            store.scram_verifier("alice", at=NOW),
            store.list(),
        )


@examples(150)
@given(alterations=st.lists(_ALTERATION, min_size=1, max_size=2))
# Regressions: each was a raw MemoryError / TypeError / UnicodeDecodeError / OverflowError (a
# PanicException from HKDF, after a 2 GB allocation, for some integer salts) before the
# store checked the SQLite types and ranges of what it reads back.
@example(alterations=[("meta", 1, 2**62)])
@example(alterations=[("psk", 8, "x")])
@example(alterations=[("psk", 8, 2**62)])
@example(alterations=[("scram", 3, 4096.5)])
@example(alterations=[("scram", 0, b"\xff")])
def test_credential_database_with_altered_rows(
    database: Database, scratch: Path, alterations: list[tuple[str, int, Any]]
) -> None:
    """R44, R53, R62: a credential database whose rows were altered outside capif8sec (any
    column, any SQLite type: NULL, huge integers, reals, text, blobs, invalid UTF-8) is read
    as the genuine credentials or refused with a CredentialStoreError; an altered key,
    identity, binding or validity bound is never handed out (AES-GCM associated data)."""
    path = _fresh(scratch)
    shutil.copyfile(database.path, path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for table, column, value in alterations:
            name = _COLUMNS[table][column % len(_COLUMNS[table])]
            try:
                conn.execute(f"UPDATE {table} SET {name} = ?", (value,))
            except sqlite3.IntegrityError:
                reject()  # NOT NULL / UNIQUE: SQLite itself refuses this alteration
    finally:
        conn.close()
    result = typed(lambda: _use_store(database, path))
    event(f"store: {type(result).__name__}")
    if isinstance(result, Capif8secError):
        assert isinstance(result, CredentialStoreError), result
        return
    psks, verifier, listed = result
    for cred in psks:
        assert (cred.identity, cred.key, cred.ccf_identity, cred.key_id) == (
            b"rof-1",
            PSK_KEY,
            CCF,
            "k1",
        )
        assert cred.validity.not_after == database.psk.validity.not_after
    if verifier is not None:
        assert (verifier.salt, verifier.iterations, verifier.stored_key, verifier.server_key) == (
            _DB_VERIFIER.salt,
            _DB_VERIFIER.iterations,
            _DB_VERIFIER.stored_key,
            _DB_VERIFIER.server_key,
        )
    assert all(isinstance(info.key_id, str) for info in listed)


@examples(60)
@given(ops=OPS)
def test_credential_database_with_damaged_file(
    database: Database, scratch: Path, ops: list[Op]
) -> None:
    """R44, R62: a credential database file with damaged bytes opens and reads, or is refused
    with a CredentialStoreError (never a raw sqlite3 error)."""
    path = _fresh(scratch)
    path.write_bytes(mutate(database.path.read_bytes(), ops))
    result = typed(lambda: _use_store(database, path))
    assert isinstance(result, tuple | CredentialStoreError), result


# =========================================================================== key and chain files


@pytest.fixture(scope="module")
def key_files(pki: Pki) -> dict[str, bytes]:
    issued = pki.server
    key = issued.private_key
    return {
        "chain": issued.chain_pem,
        "key": issued.key_pem,
        "encrypted": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key password"),
        ),
        "der": key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }


@examples(80)
@given(
    which=st.sampled_from(["key", "encrypted", "der", "chain"]),
    ops=OPS,
    password=st.one_of(st.none(), st.just(b"key password"), st.binary(max_size=12)),
)
# Regression: an encrypted key without a password made OpenSSL prompt for the pass phrase on
# the terminal (a server blocked; without a terminal, a raw OSError).
@example(which="encrypted", ops=[("set", 0, ord("-"))], password=None)
def test_private_key_and_chain_files(
    key_files: dict[str, bytes], scratch: Path, which: str, ops: list[Op], password: bytes | None
) -> None:
    """R27: ``Identity.from_files`` on a damaged key file (PEM, encrypted PEM, DER) or chain
    file, with any password, and the server context built from it: a context or a
    TlsConfigError -- never an ssl or cryptography exception."""
    chain, key = scratch / "chain.pem", scratch / "key.pem"
    damaged = mutate(key_files[which], ops)
    chain.write_bytes(damaged if which == "chain" else key_files["chain"])
    key.write_bytes(key_files["key"] if which == "chain" else damaged)
    identity = typed(lambda: tls.Identity.from_files(chain, key, password))
    assert not isinstance(identity, Capif8secError)
    ctx = typed(
        lambda: tls.server_context(present=identity, verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED)
    )
    event(f"{which}: {type(ctx).__name__}")
    assert isinstance(ctx, tls.CapifContext | TlsConfigError), ctx


# =========================================================================== the reference AzF


_HEAD_LINE_SAMPLES = st.sampled_from(
    [
        "GET /whoami HTTP/1.1",
        "POST /capif8/v1/authorization-responses HTTP/1.1",
        "POST /capif8/v1/revocations HTTP/1.0",
        "Host: ccf.capif.example",
        "Content-Length: 0",
        "Content-Length: 12",
        "Content-Length: \u00b2",
        "Content-Length: 99999999999",
        "Content-Length: -1",
        "content-length: 5",
        'Authorization: CAPIF8-PSK realm="capif8"',
        " Folded: value",
        "NoColon",
        ":",
        "",
    ]
)
_HEAD_LINES = weighted(
    (3, _HEAD_LINE_SAMPLES),
    (1, st.builds("Authorization: {}".format, authorization_values())),
    (
        1,
        st.builds(
            "{}: {}".format,
            st.sampled_from(["Authorization", "Content-Length", "Host", "X"]),
            authorization_values(),
        ),
    ),
    (1, st.text(max_size=30)),
)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    """Request heads in the HTTP/1.1 shape: a request line, header lines, CRLF or LF."""
    method = draw(st.sampled_from(["GET", "POST", "GET", "POST", "get", "PUT", "", "GET /x"]))
    path = draw(
        st.one_of(
            st.sampled_from(["/whoami", azf.RESPONSES_PATH, azf.REVOCATIONS_PATH, "*", ""]),
            st.text(max_size=12),
        )
    )
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]))
    lines = [f"{method} {path} {version}", *draw(st.lists(_HEAD_LINES, max_size=6))]
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r\n\r\n"]))
    return (eol.join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")


_HEADS = weighted((1, st.binary(max_size=600)), (3, request_heads()))


@examples(200)
@given(head=_HEADS)
def test_request_head_parser(head: bytes) -> None:
    """R56: ``parse_request`` on arbitrary bytes and near-valid heads: None or a Request with a
    method and path free of spaces and lower-case header names."""
    request = azf.parse_request(head)
    event(f"parsed: {request is not None}")
    if request is None:
        return
    assert " " not in request.method and " " not in request.path
    for name, values in request.headers.items():
        assert name == name.lower() and ":" not in name and values


def _tls_peer(kind: str) -> TlsPeer:
    if kind == "certificate":
        ids = CertificateIdentities(("urn:capif:rof:rof-a",))
        return TlsPeer(
            "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate", ids, None, None, None
        )
    if kind == "psk":
        return TlsPeer(
            "server",
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "psk",
            None,
            None,
            None,
            None,
            psk_identity="rof-b",
            psk_key_id="k1",
        )
    return TlsPeer(
        "server",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "none",
        None,
        None,
        CCF,
        None,
        channel_binding=BINDING,
    )


@pytest.fixture(scope="module")
def app() -> azf.AzfApp:
    request = ResourceOwnerAuthorizationRequest.from_dict(_MESSAGES[0][1])
    engine = PolicyEngine(loads_policy(POLICY_SEED))
    endpoint = azf.Capif8Endpoint(MessageGuard(engine), [request], clock=lambda: NOW)
    return azf.AzfApp(in_channel=[_scram_http(), _psk_http()], capif8=endpoint)


_BODIES = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.integers(0, len(_MESSAGES) - 1), OPS).map(
        lambda t: mutate(json.dumps(_MESSAGES[t[0]][1]).encode(), t[1])
    ),
    st.sampled_from([json.dumps(doc).encode() for _, doc in _MESSAGES]),
)


@examples(200)
@given(head=_HEADS, body=_BODIES, kind=st.sampled_from(["certificate", "psk", "none"]))
def test_azf_request_handling(app: azf.AzfApp, head: bytes, body: bytes, kind: str) -> None:
    """R54, R56, R59: what the reference AzF answers to any request head and body, on a
    certificate, TLS-PSK or in-channel connection: always one complete HTTP/1.1 response
    (never an exception), and never a 2xx to an in-channel peer that proved nothing."""
    response = app.respond(azf.parse_request(head), _tls_peer(kind), body)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in rest
    status = int(status_line.split(b" ")[1])
    event(f"{kind}: {status}")
    assert 200 <= status < 600
    if kind == "none":
        assert status >= 400


class _Writer:
    """What ``_handle`` needs of an asyncio StreamWriter: write and drain."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


@examples(150)
@given(
    head=_HEADS,
    body=_BODIES,
    length=st.one_of(st.none(), st.integers(0, 300).map(str), st.text(max_size=8)),
    eof=st.booleans(),
)
def test_azf_stream_handler(
    app: azf.AzfApp, head: bytes, body: bytes, length: str | None, eof: bool
) -> None:
    """R54, R56: the connection handler of ``capif8sec serve`` on any stream (a head with or
    without Content-Length -- malformed, too large, too short for the body -- then the body,
    then EOF or not): it writes nothing or one HTTP response, and raises nothing."""
    if length is not None and head.endswith(b"\r\n\r\n"):
        head = head[:-2] + f"Content-Length: {length}\r\n\r\n".encode("utf-8", "surrogatepass")

    async def run() -> bytes | None:
        reader = asyncio.StreamReader(limit=azf.MAX_REQUEST_HEAD)
        reader.feed_data(head + body)
        if eof:
            reader.feed_eof()
        writer = _Writer()
        handle = getattr(azf, "_handle")  # noqa: B009 -- the private handler serve() runs
        task = asyncio.ensure_future(handle(app, reader, writer, _tls_peer("none")))
        for _ in range(200):  # all input is there: the handler needs loop turns, not time
            if task.done():
                task.result()  # re-raises whatever the handler raised
                return bytes(writer.data)
            await asyncio.sleep(0)
        task.cancel()  # waiting for bytes that never come (the server's REQUEST_TIMEOUT)
        return None

    written = asyncio.run(run())
    event(f"handler wrote: {written[:12]!r}" if written is not None else "handler waits")
    if written is None:
        assert not eof
        return
    assert written == b"" or written.startswith(b"HTTP/1.1 ")
