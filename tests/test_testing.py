"""The test PKI (capif8sec.testing) and ``capif8sec pki``: public API other projects rely on."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from capif8sec.certs import ChainValidator, identities_of, lint, load_certificates
from capif8sec.cli import main
from capif8sec.errors import UsageError
from capif8sec.testing import TestPKI


def test_pki_command_writes_the_contracted_files(tmp_path: Path) -> None:
    """CLI contract: file names, key modes 0600, chain order, SAN identities, a usable CRL."""
    assert main(["pki", str(tmp_path / "pki")]) == 0
    d = tmp_path / "pki"
    expected = {
        "root-ca.pem",
        "root-ca.key",
        "tls-ca.pem",
        "tls-ca.key",
        "ccf-server.pem",
        "ccf-server.key",
        "rof-client.pem",
        "rof-client.key",
        "tls-ca.crl.pem",
    }
    assert {p.name for p in d.iterdir()} == expected
    for name in expected:
        mode = stat.S_IMODE((d / name).stat().st_mode)
        if name.endswith(".key"):
            assert mode == 0o600, name
        assert b"PRIVATE KEY" in (d / name).read_bytes() or not name.endswith(".key")
    ccf = load_certificates((d / "ccf-server.pem").read_bytes())
    tls_ca = load_certificates((d / "tls-ca.pem").read_bytes())
    assert len(ccf) == 2
    assert ccf[1] == tls_ca[0]
    assert identities_of(ccf[0]).dns_names == ("ccf.capif.example",)
    rof = load_certificates((d / "rof-client.pem").read_bytes())
    uris = identities_of(rof[0]).uris
    assert len(uris) == 1
    assert uris[0].startswith("urn:capif:rof:")
    validator = ChainValidator(
        (d / "root-ca.pem").read_bytes(), crls=[(d / "tls-ca.crl.pem").read_bytes()]
    )
    validator.verify(ccf[0], ccf[1:], role="server")
    validator.verify(rof[0], rof[1:], role="client")
    assert (
        main(
            [
                "lint",
                "--role",
                "server",
                "--ca",
                str(d / "root-ca.pem"),
                "--crl",
                str(d / "tls-ca.crl.pem"),
                str(d / "ccf-server.pem"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "lint",
                "--role",
                "client",
                "--ca",
                str(d / "root-ca.pem"),
                "--crl",
                str(d / "tls-ca.crl.pem"),
                str(d / "rof-client.pem"),
            ]
        )
        == 0
    )


def test_lint_without_crl_fails_closed(tmp_path: Path) -> None:
    """R25: with --ca but no CRL, revocation is unknown and the file is not compliant."""
    TestPKI().write(tmp_path)
    code = main(
        [
            "lint",
            "--role",
            "server",
            "--ca",
            str(tmp_path / "root-ca.pem"),
            str(tmp_path / "ccf-server.pem"),
        ]
    )
    assert code == 1
    code = main(
        [
            "lint",
            "--role",
            "server",
            "--ca",
            str(tmp_path / "root-ca.pem"),
            "--deviation",
            "no-revocation-check",
            str(tmp_path / "ccf-server.pem"),
        ]
    )
    assert code == 0


def test_private_keys_never_reach_repr() -> None:
    pki = TestPKI()
    issued = pki.client_cert()
    pem = issued.key_pem.decode()
    body = "".join(pem.splitlines()[1:-1])
    for text in (repr(issued), repr(pki), repr(pki.tls_ca), str(issued)):
        assert body[:24] not in text
        assert "PRIVATE" not in text


def test_key_types_and_sans() -> None:
    pki = TestPKI("p384")
    server = pki.server_cert(
        "a.capif.example",
        "b.capif.example",
        ip_addresses=["127.0.0.1"],
        uris=["https://a.capif.example/"],
    )
    ids = identities_of(server.cert)
    assert ids.dns_names == ("a.capif.example", "b.capif.example")
    assert [str(a) for a in ids.ip_addresses] == ["127.0.0.1"]
    assert ids.uris == ("https://a.capif.example/",)
    assert server.cert.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert lint(server.cert, "tls-entity", "server", issuer=pki.tls_ca.cert, strict=True).compliant
    rsa = TestPKI("rsa3072").client_cert("rof-9")
    assert rsa.cert.public_key().key_size == 3072  # type: ignore[union-attr]


def test_interconnection_chain_shape() -> None:
    pki = TestPKI(interconnection=True)
    rof = pki.client_cert()
    assert rof.intermediates == (pki.tls_ca.cert, pki.interconnection_ca.cert)
    bc = pki.interconnection_ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.path_length == 1
    verified = ChainValidator(pki.trust_anchor_pem, crls=[pki.crl()]).verify(
        rof.cert, rof.intermediates, role="client"
    )
    assert len(verified.chain) == 4


@pytest.mark.parametrize("bad", ["p999", "rsa", ""])
def test_unknown_key_type_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        TestPKI(bad)


def test_breaking_unknown_rule_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        TestPKI().breaking("no.such_rule")
