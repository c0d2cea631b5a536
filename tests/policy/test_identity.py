"""Typed identities from authenticated credentials only (R56), and RFC 9525 reference-identity
matching: wildcards, IDNA, IP, URI, and the CN only in legacy mode without SANs (R57)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import given
from hypothesis import strategies as st
from policy_helpers import cert_peer, in_channel_peer, psk_peer, scram_peer, tls_peer

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.certs.identities import matches_reference as certs_matches_reference
from capif8sec.errors import UsageError
from capif8sec.policy.identity import (
    CnId,
    DnsId,
    IpId,
    PskIdentity,
    ScramUsername,
    UriId,
    identities_of_peer,
    identity_key,
    matches,
    matches_any,
    matches_reference,
    parse_identity,
    policy_keys,
    reference_identity,
)

# -- identities of an authenticated peer (R56, R57) ------------------------------------------


def test_certificate_identities_in_san_order() -> None:
    """R56: URI-IDs, DNS-IDs and IP-IDs of the validated certificate, typed."""
    peer = cert_peer(
        "URN:capif:rof:rof-1", dns=("ROF-1.Example.COM.",), ips=("192.0.2.7", "2001:db8::7")
    )
    assert identities_of_peer(peer) == (
        UriId("urn:capif:rof:rof-1"),
        DnsId("rof-1.example.com"),
        IpId("192.0.2.7"),
        IpId("2001:db8::7"),
    )
    assert policy_keys(peer) == (
        "uri:urn:capif:rof:rof-1",
        "dns:rof-1.example.com",
        "ip:192.0.2.7",
        "ip:2001:db8::7",
    )


def test_cn_never_when_a_san_is_present() -> None:
    """R57: with any SAN identifier the CN is ignored, even in legacy mode."""
    peer = cert_peer(dns=("rof.example",), cn="legacy-rof")
    assert CnId("legacy-rof") not in identities_of_peer(peer, legacy_cn=True)
    assert policy_keys(peer, legacy_cn=True) == ("dns:rof.example",)


def test_cn_only_in_legacy_mode_without_sans() -> None:
    """R57: the CN is an identity only in the explicit legacy mode and without SANs."""
    peer = cert_peer(cn="Rof.Example")
    assert identities_of_peer(peer) == ()
    assert policy_keys(peer) == ()
    assert identities_of_peer(peer, legacy_cn=True) == (CnId("Rof.Example"),)
    assert policy_keys(peer, legacy_cn=True) == ("cn:rof.example",)


def test_an_unusable_san_still_blocks_the_cn_fallback() -> None:
    """R57: a SAN that is present but unusable (not an LDH name) does not let the CN in."""
    peer = cert_peer(dns=("not a name!",), cn="rof.example")
    assert identities_of_peer(peer, legacy_cn=True) == ()
    assert policy_keys(peer, legacy_cn=True) == ()


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")), id="ip-network"),
        pytest.param(x509.RFC822Name("ops@rof.example"), id="rfc822Name"),
        pytest.param(
            x509.OtherName(ObjectIdentifier("1.3.6.1.5.5.7.8.7"), b"\x16\x13_capif8.rof.example"),
            id="srv-id",
        ),
    ],
)
def test_any_san_entry_blocks_the_cn_fallback(entry: x509.GeneralName) -> None:
    """R57: a certificate (validated by the chain validator) whose subjectAltName holds only
    entries the policy cannot use still has SAN identifiers: its CN is never an identity, in
    legacy mode either (review: the CN used to become the identity)."""
    from capif8sec.auth.certificate import CertificateAuthenticator
    from capif8sec.certs import ChainValidator
    from capif8sec.policy import Policy, PolicyEngine, PolicyRequest, Reason, Rule
    from capif8sec.testing import TestPKI
    from capif8sec.tls.check import TlsPeer

    pki = TestPKI()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rof-victim")])
    spec = pki.spec(
        "client",
        subject=subject,
        uris=(),
        extra_extensions=((x509.SubjectAlternativeName([entry]), False),),
    )
    issued = pki.tls_ca.issue(spec)
    verified = ChainValidator(pki.trust_anchor_pem, crls=[pki.crl()]).verify(
        issued.cert, issued.intermediates, role="client"
    )
    assert verified.identities.has_san_identifiers
    tls = TlsPeer(
        "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate",
        verified.identities, verified, None, None,
    )  # fmt: skip
    peer = CertificateAuthenticator(legacy_cn=True).authenticate(tls)
    assert policy_keys(peer, legacy_cn=True) == ()
    assert not matches_reference(verified.identities, "rof-victim", legacy_cn=True)
    rule = Rule("victim", ["cn:rof-victim"], ["*"], ["authorize"], ["certificate"])
    engine = PolicyEngine(Policy([rule], legacy_cn=True))
    decision = engine.decide(peer, PolicyRequest("authorize", "msisdn-491700000001"))
    assert decision.reason is Reason.NO_IDENTITY


def test_wildcard_dns_ids_are_matched_but_never_policy_identities() -> None:
    peer = cert_peer(dns=("*.rof.example", "a.rof.example"))
    assert DnsId("*.rof.example") in identities_of_peer(peer)
    assert policy_keys(peer) == ("dns:a.rof.example",)


def test_psk_scram_and_in_channel_identities() -> None:
    """R56: the PSK identity (TLS-level or in-channel) and the SCRAM username, kinds apart."""
    assert identities_of_peer(psk_peer("rof-1")) == (PskIdentity("rof-1"),)
    assert identities_of_peer(in_channel_peer("rof-1")) == (PskIdentity("rof-1"),)
    assert identities_of_peer(scram_peer("Alice")) == (ScramUsername("Alice"),)
    assert policy_keys(psk_peer("Rof-1")) == ("psk:Rof-1",)  # exact, no case folding (R45)
    assert policy_keys(scram_peer("rof-1.example")) == ("scram:rof-1.example",)


def test_no_identity_without_an_authenticated_credential() -> None:
    """R56: a certificate peer without a checked TLS certificate, or a plugin method, has no
    identity the policy can use: whatever it claims in ``identity`` is not trusted."""
    claimed = AuthenticatedPeer("urn:capif:rof:rof-1", Method.CERTIFICATE)  # no TlsPeer
    assert identities_of_peer(claimed) == () and policy_keys(claimed) == ()
    psk_tls = AuthenticatedPeer(
        "urn:capif:rof:rof-1",
        Method.CERTIFICATE,
        tls=tls_peer(CertificateIdentities(("urn:capif:rof:rof-1",)), authentication="psk"),
    )
    assert identities_of_peer(psk_tls) == () and policy_keys(psk_tls) == ()
    plugin = AuthenticatedPeer("rof-1", "oauth")
    assert identities_of_peer(plugin) == () and policy_keys(plugin) == ()
    assert policy_keys(AuthenticatedPeer("", Method.PSK)) == ()


# -- RFC 9525 DNS-ID matching ----------------------------------------------------------------


def certificate(
    *dns: str, uris: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> CertificateIdentities:
    return CertificateIdentities(uris, dns, tuple(ipaddress.ip_address(a) for a in ips))


@pytest.mark.parametrize(
    ("presented", "reference", "expected"),
    [
        ("ccf.example.com", "ccf.example.com", True),
        ("CCF.Example.Com", "ccf.EXAMPLE.com", True),
        ("ccf.example.com.", "ccf.example.com", True),
        ("ccf.example.com", "ccf.example.com.", True),
        ("ccf.example.com", "other.example.com", False),
        ("ccf.example.com", "example.com", False),
        # wildcards: only the whole left-most label, exactly one label
        ("*.example.com", "ccf.example.com", True),
        ("*.Example.COM", "CCF.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.ccf.example.com", False),
        ("f*o.example.com", "foo.example.com", False),
        ("*o.example.com", "foo.example.com", False),
        ("fo*.example.com", "foo.example.com", False),
        ("ccf.*.com", "ccf.example.com", False),
        ("*.*.example.com", "a.b.example.com", False),
        ("**.example.com", "a.example.com", False),
        ("*", "com", False),
        # no wildcard on a single label ("public suffix"-like)
        ("*.com", "example.com", False),
        ("*.", "example", False),
    ],
)
def test_dns_id_rules(presented: str, reference: str, expected: bool) -> None:
    """R57 (RFC 9525): case-insensitive DNS-IDs; wildcards only as the whole left-most label."""
    assert matches(DnsId(presented), reference) is expected
    assert matches_reference(certificate(presented), reference) is expected


def test_a_reference_identity_never_holds_a_wildcard() -> None:
    with pytest.raises(UsageError):
        matches(DnsId("a.example.com"), "*.example.com")
    with pytest.raises(UsageError):
        matches(DnsId("*.example.com"), DnsId("*.example.com"))
    with pytest.raises(UsageError):
        reference_identity("")
    with pytest.raises(UsageError):
        matches(DnsId("*.example.com"), ".example.com")
    assert not matches_reference(certificate("*.example.com"), "*.example.com")


def test_idna_u_label_reference_matches_the_a_label() -> None:
    """R57: internationalized names are compared as A-labels (IDNA2008, UTS #46 mapping)."""
    presented = DnsId("xn--bcher-kva.example")
    assert matches(presented, "bücher.example")
    assert matches(presented, "BÜCHER.Example.")  # mapped to lower case first
    assert matches(presented, "XN--BCHER-KVA.example")
    assert matches(DnsId("*.xn--bcher-kva.example"), "shop.bücher.example")
    assert matches_reference(certificate("xn--bcher-kva.example"), "bücher.example")
    # IDNA2008, not IDNA2003: "ß" is a letter of its own, not "ss".
    assert reference_identity("faß.example") == DnsId("xn--fa-hia.example")
    assert not matches(DnsId("fass.example"), "faß.example")


def test_a_presented_u_label_or_a_bad_a_label_never_matches() -> None:
    """Certificates carry A-labels (RFC 5280 7.2); a U-label in a dNSName is malformed."""
    assert not matches_reference(certificate("bücher.example"), "bücher.example")
    with pytest.raises(UsageError, match="A-label"):
        reference_identity("xn--zzzz.example")
    assert not matches_reference(certificate("xn--zzzz.example"), "xn--zzzz.example")


# -- IP-IDs, URI-IDs, CN, PSK and SCRAM ------------------------------------------------------


def test_ip_reference_matches_only_ip_addresses() -> None:
    """R57: an IP reference matches only an iPAddress SAN, never a DNS-ID spelling it."""
    assert matches(IpId("192.0.2.1"), "192.0.2.1")
    assert not matches(IpId("192.0.2.2"), "192.0.2.1")
    assert not matches(DnsId("192.0.2.1"), "192.0.2.1")
    assert matches(IpId("2001:db8::1"), "2001:DB8:0:0::1")
    assert not matches(IpId("::ffff:192.0.2.1"), "192.0.2.1")
    assert matches_reference(certificate(ips=("2001:db8::1",)), "2001:db8:0::1")
    assert not matches_reference(certificate("192.0.2.1"), "192.0.2.1")
    assert not matches(IpId("192.0.2.1"), "ccf.example.com")


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.1.",
        "127.1",
        "0x7f.0.0.1",
        "10.0.0",
        "a.b.123",
        "127.0.0.0x1",  # inet_aton reads hex labels too (second review)
        "0x7f.0.0.0x1",
        "1.0x7f",
        "a.0x",
    ],
)
def test_a_reference_that_looks_like_an_address_is_not_a_dns_name(text: str) -> None:
    """R57: a reference that is not an IP address but whose last label is all digits is
    refused, rather than taken as a DNS name that a DNS-ID spelling an address would match
    (review: "192.0.2.1." matched the DNS-ID "192.0.2.1")."""
    with pytest.raises(UsageError, match="numeric"):
        reference_identity(text)
    with pytest.raises(UsageError):
        parse_identity(f"dns:{text}")  # nor a DNS identity in a rule or a revocation
    peer = cert_peer(dns=(text.rstrip("."),))  # presented: not a policy identity either
    assert policy_keys(peer) == ()
    assert identities_of_peer(peer) == ()
    assert not matches_reference(certificate(text.rstrip(".")), text)  # matches nothing


def test_uri_ids_scheme_and_host_fold_the_rest_is_exact() -> None:
    """RFC 9525 URI-IDs: scheme and host case-insensitively, port, path and query exactly."""
    presented = UriId("https://CCF.Example.com:8443/capif8/V1")
    assert matches(presented, "HTTPS://ccf.example.COM:8443/capif8/V1")
    assert not matches(presented, "https://ccf.example.com:8443/capif8/v1")
    assert not matches(presented, "https://ccf.example.com/capif8/V1")
    assert matches(UriId("urn:capif:rof:rof-1"), "URN:capif:rof:rof-1")
    assert not matches(UriId("urn:capif:rof:rof-1"), "urn:CAPIF:rof:rof-1")
    assert not matches(DnsId("ccf.example.com"), "https://ccf.example.com/")
    assert not matches(UriId("https://ccf.example.com/"), "ccf.example.com")
    assert matches_reference(certificate(uris=("urn:capif:ccf:1",)), "urn:capif:ccf:1")
    assert UriId("https://u@[2001:DB8::1]:8/x").uri == "https://u@[2001:db8::1]:8/x"
    assert UriId("https://Bücher.example/").uri == "https://xn--bcher-kva.example/"


@pytest.mark.parametrize("bad", ["no-scheme", "urn:", "1x:y", "http://", "https://[::1/", "a b:c"])
def test_unusable_uris(bad: str) -> None:
    with pytest.raises(UsageError):
        UriId(bad)
    assert policy_keys(cert_peer(bad)) == ()


def test_cn_matching_is_legacy_only_and_exact() -> None:
    """R57: CN-ID matching only with legacy_cn and without SANs; no wildcard in a CN."""
    only_cn = CertificateIdentities(common_name="ccf.example.com")
    assert not matches_reference(only_cn, "ccf.example.com")
    assert matches_reference(only_cn, "CCF.example.com", legacy_cn=True)
    with_san = CertificateIdentities(dns_names=("other.example",), common_name="ccf.example.com")
    assert not matches_reference(with_san, "ccf.example.com", legacy_cn=True)
    assert not matches(CnId("*.example.com"), "ccf.example.com")
    assert not matches(CnId("not a name"), "ccf.example.com")


def test_psk_and_scram_identities_are_not_reference_identities() -> None:
    assert not matches(PskIdentity("ccf.example.com"), "ccf.example.com")
    assert not matches(ScramUsername("ccf.example.com"), "ccf.example.com")
    assert matches_any([PskIdentity("x"), DnsId("ccf.example.com")], "ccf.example.com")
    assert not matches_any([], "ccf.example.com")


def test_the_certs_module_keeps_its_entry_point() -> None:
    ids = certificate("*.example.com")
    assert certs_matches_reference(ids, "ccf.example.com")
    assert not certs_matches_reference(ids, "example.com")


# -- key forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dns:ROF.Example.", "dns:rof.example"),
        ("dns:bücher.example", "dns:xn--bcher-kva.example"),
        ("uri:URN:capif:rof:1", "uri:urn:capif:rof:1"),
        ("uri:HTTPS://Rof.Example/A", "uri:https://rof.example/A"),
        ("ip:2001:DB8::0:1", "ip:2001:db8::1"),
        ("psk:Rof 1", "psk:Rof 1"),
        ("scram:Alice", "scram:Alice"),
        ("cn:Rof.Example", "cn:rof.example"),
        ("cn:Some Name", "cn:some name"),  # X.520: case ignored
    ],
)
def test_identity_keys(text: str, key: str) -> None:
    assert identity_key(text) == key
    assert parse_identity(text).key == key


@pytest.mark.parametrize(
    "bad",
    [
        "rof-1",
        "x:rof",
        "dns:",
        "dns:*.example",
        "dns:bad name",
        "ip:999.1.1.1",
        "uri:nope",
        "psk:" + "x" * 65536,
        "dns:" + "a" * 1100,
        "psk:\ud800",
    ],
)
def test_bad_identities(bad: str) -> None:
    with pytest.raises(UsageError):
        identity_key(bad)
    with pytest.raises(UsageError):
        parse_identity(bad)


def test_typed_identity_constructors_refuse_empty_values() -> None:
    for cls in (PskIdentity, ScramUsername, CnId):
        with pytest.raises(UsageError):
            cls("")
    with pytest.raises(UsageError):
        IpId("not-an-ip")
    with pytest.raises(UsageError):
        parse_identity(42)  # type: ignore[arg-type]


# -- normalization, with hypothesis ----------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_tld = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)  # never an IPv4 address
_name = st.tuples(st.lists(_label, min_size=1, max_size=4), _tld).map(
    lambda parts: ".".join([*parts[0], parts[1]])
)


def _recase(draw: Callable[[st.SearchStrategy[list[bool]]], list[bool]], text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def _variant(draw: st.DrawFn, name: str) -> str:
    return _recase(draw, name) + draw(st.sampled_from(["", "."]))


@given(data=st.data(), name=_name)
def test_case_and_trailing_dot_never_change_a_dns_match(data: st.DataObject, name: str) -> None:
    """R57: a DNS-ID matches its reference under any case change and a trailing dot."""
    presented = data.draw(_variant(name))
    reference = data.draw(_variant(name))
    assert matches(DnsId(presented), reference)
    assert matches_reference(certificate(presented), reference)
    assert identity_key(f"dns:{presented}") == identity_key(f"dns:{reference}")
    assert policy_keys(cert_peer(dns=(presented,))) == (f"dns:{name}",)


@given(data=st.data(), name=_name, head=_label, extra=_label)
def test_a_wildcard_stands_for_exactly_one_label(
    data: st.DataObject, name: str, head: str, extra: str
) -> None:
    wildcard = "*." + data.draw(_variant(name))
    assert matches(DnsId(wildcard), data.draw(_variant(f"{head}.{name}")))
    assert not matches(DnsId(wildcard), f"{extra}.{head}.{name}")
    assert not matches(DnsId(wildcard), name)


@given(name=_name, other=_name)
def test_different_names_do_not_match(name: str, other: str) -> None:
    assert matches(DnsId(name), other) is (name == other)


@given(path=st.text(alphabet="abcXYZ/-_.", max_size=12), data=st.data())
def test_uri_normalization_folds_scheme_and_host_only(path: str, data: st.DataObject) -> None:
    uri = f"https://ccf.example.com/{path}"
    variant = f"{_recase(data.draw, 'https')}://{_recase(data.draw, 'ccf.example.com')}/{path}"
    assert matches(UriId(variant), uri)
    assert identity_key(f"uri:{variant}") == f"uri:{uri}"
