"""Certificates and CRLs made by the real ``openssl`` binary, judged by capif8sec (R1-R5, R12-R14,
R16, R22, R24, R25).

Everything capif8sec is tested with elsewhere comes from pyca/cryptography (``TestPKI``).  Here an
independent implementation, OpenSSL 3.0, makes the certificates (``openssl req -new -x509``,
``openssl req -new`` + ``openssl x509 -req -CA ... -extfile ...``) and the CRLs
(``openssl ca -gencrl``, ``openssl ca -revoke``) into ``tmp_path``, including what cryptography's
builder refuses to make (SHA-1 signatures, v1 certificates).  Every certificate is also printed
with ``openssl x509 -text`` to show that OpenSSL really made what the test claims, before
capif8sec's verdict is checked rule by rule, in process and through the ``capif8sec`` CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import SignatureAlgorithmOID

from capif8sec import _der
from capif8sec.certs import ChainValidator, Report, Severity, lint
from capif8sec.errors import (
    CertificateParseError,
    CertificateRevoked,
    ChainValidationError,
    ProfileViolation,
    RevocationUnknown,
)
from capif8sec.testing import TestPKI

OPENSSL = shutil.which("openssl")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(OPENSSL is None, reason="the openssl binary is not on PATH"),
]

CRL_URL = "http://crl.capif.example/openssl-tls-ca.crl"
SERVER_NAME = "ccf.capif.example"

#: Extension sections for ``openssl x509 -req -extfile``/``req -x509 -extensions``, one per
#: certificate shape.  The ``ee_*`` shapes each break exactly one TS 33.310 6.1.3a rule.
EXTENSIONS = f"""
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ root_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ tls_ca ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ server ]
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = DNS:{SERVER_NAME}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client ]
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = URI:urn:capif:rof:rof-openssl
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ ee_no_key_usage ]
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = DNS:{SERVER_NAME}

[ ee_key_usage_not_critical ]
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = DNS:{SERVER_NAME}

[ ee_key_encipherment_only ]
keyUsage = critical, keyEncipherment
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = DNS:{SERVER_NAME}

[ ee_no_crl_dp ]
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:{SERVER_NAME}

[ ee_client_auth_only ]
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
crlDistributionPoints = URI:{CRL_URL}
subjectAltName = DNS:{SERVER_NAME}
"""

#: ``openssl ca`` configuration of one CA: a v2 CRL (CRL number + AKI) by default, and a
#: ``v1_crl`` section without CRL extensions, which makes OpenSSL write a v1 CRL.
CA_CONFIG = """
[ ca ]
default_ca = v2_crl
[ v2_crl ]
database = {db}
crlnumber = {crlnumber}
certificate = {cert}
private_key = {key}
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[ v1_crl ]
database = {db}
certificate = {cert}
private_key = {key}
default_md = sha256
default_crl_days = 7
[ crl_ext ]
authorityKeyIdentifier = keyid
"""


def run_openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the openssl binary in ``cwd``."""
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def openssl(*args: str | Path, cwd: Path) -> str:
    """Run the openssl binary; fail the test with its stderr when it fails."""
    proc = run_openssl(*args, cwd=cwd)
    assert proc.returncode == 0, f"openssl {' '.join(map(str, args))} failed:\n{proc.stderr}"
    return proc.stdout


def subject(cn: str) -> str:
    return f"/C=SE/O=capif8sec interop/CN={cn}"


def new_key_args(key: str) -> list[str]:
    """``req -newkey`` arguments for ``p256``, ``p384`` or ``rsa<bits>``."""
    if key in ("p256", "p384"):
        curve = "P-256" if key == "p256" else "P-384"
        return ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{curve}"]
    assert key.startswith("rsa")
    return ["-newkey", f"rsa:{key[3:]}"]


@dataclass(frozen=True)
class OpenSSLCA:
    """A CA whose certificate, key, database and CRLs are files made and used by openssl."""

    directory: Path
    name: str
    cert: Path
    key: Path
    extfile: Path

    @property
    def config(self) -> Path:
        return self.directory / f"{self.name}-ca.cnf"

    def setup_database(self) -> None:
        (self.directory / f"{self.name}-index.txt").write_text("")
        (self.directory / f"{self.name}-crlnumber").write_text("01\n")
        self.config.write_text(
            CA_CONFIG.format(
                db=f"{self.name}-index.txt",
                crlnumber=f"{self.name}-crlnumber",
                cert=self.cert.name,
                key=self.key.name,
            )
        )

    def issue(
        self,
        name: str,
        extensions: str | None,
        *,
        cn: str = SERVER_NAME,
        key: str = "p256",
        digest: str = "sha256",
        sigopts: Sequence[str] = (),
    ) -> Path:
        """``openssl req -new`` then ``openssl x509 -req -CA``; no extensions when None."""
        d = self.directory
        openssl(
            "req", "-new", "-config", self.extfile, *new_key_args(key), "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject(cn), "-utf8",
            cwd=d,
        )  # fmt: skip
        args = [
            "x509", "-req", "-in", f"{name}.csr", "-CA", self.cert.name, "-CAkey", self.key.name,
            "-CAserial", f"{self.name}.srl", "-CAcreateserial", "-days", "365", f"-{digest}",
            "-out", f"{name}.pem",
        ]  # fmt: skip
        for opt in sigopts:
            args += ["-sigopt", opt]
        if extensions is not None:
            args += ["-extfile", self.extfile.name, "-extensions", extensions]
        openssl(*args, cwd=d)
        return d / f"{name}.pem"

    def issue_ca(self, name: str, *, key: str = "p256") -> OpenSSLCA:
        """A TLS CA (pathlen 0) under this CA."""
        self.issue(name, "tls_ca", cn=f"openssl {name}", key=key)
        d = self.directory
        ca = OpenSSLCA(d, name, d / f"{name}.pem", d / f"{name}.key", self.extfile)
        ca.setup_database()
        return ca

    def revoke(self, cert: Path, reason: str = "keyCompromise") -> None:
        openssl(
            "ca", "-config", self.config, "-revoke", cert.name, "-crl_reason", reason,
            cwd=self.directory,
        )  # fmt: skip

    def crl(self, name: str, *, section: str = "v2_crl", digest: str = "sha256") -> Path:
        """``openssl ca -gencrl``: the CA's CRL as PEM."""
        openssl(
            "ca", "-config", self.config, "-name", section, "-gencrl", "-md", digest,
            "-out", f"{name}.crl.pem", cwd=self.directory,
        )  # fmt: skip
        return self.directory / f"{name}.crl.pem"


@dataclass(frozen=True)
class OpenSSLPKI:
    """openssl-made root CA (self-signed, ``req -new -x509``) -> TLS CA (pathlen 0)."""

    directory: Path
    root: OpenSSLCA
    tls_ca: OpenSSLCA

    @classmethod
    def make(cls, directory: Path) -> OpenSSLPKI:
        extfile = directory / "extensions.cnf"
        extfile.write_text(EXTENSIONS)
        openssl(
            "req", "-new", "-x509", "-config", extfile, "-extensions", "root_ca",
            *new_key_args("p256"), "-nodes", "-keyout", "root.key", "-out", "root.pem",
            "-days", "3650", "-sha256", "-subj", subject("openssl root CA"), "-utf8",
            cwd=directory,
        )  # fmt: skip
        root = OpenSSLCA(directory, "root", directory / "root.pem", directory / "root.key", extfile)
        root.setup_database()
        return cls(directory, root, root.issue_ca("tls-ca"))

    def validator(self, crl: Path, deviations: Sequence[str] = ()) -> ChainValidator:
        return ChainValidator(
            self.root.cert.read_bytes(), crls=[crl.read_bytes()], deviations=deviations
        )

    def verify(self, leaf: Path, crl: Path, role: str = "server") -> None:
        self.validator(crl).verify(leaf.read_bytes(), [self.tls_ca.cert.read_bytes()], role=role)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLPKI:
    return OpenSSLPKI.make(tmp_path_factory.mktemp("openssl-pki"))


@pytest.fixture(scope="module")
def crl(pki: OpenSSLPKI) -> Path:
    """The TLS CA's current v2 CRL (nothing revoked yet), made by ``openssl ca -gencrl``."""
    return pki.tls_ca.crl("tls-ca")


def text_of(path: Path) -> str:
    """``openssl x509 -text`` (or ``crl -text``): what OpenSSL itself says it made."""
    kind = "crl" if path.name.endswith(".crl.pem") else "x509"
    return openssl(kind, "-in", path.name, "-noout", "-text", cwd=path.parent)


def errors_of(report: Report) -> set[str]:
    return report.rule_ids(Severity.ERROR)


# --------------------------------------------------------------------------- (a) conformant


def test_openssl_ca_certificates_are_compliant(pki: OpenSSLPKI) -> None:
    """R22, R23: OpenSSL's root (no pathlen) and TLS CA (critical basicConstraints pathlen 0,
    critical keyUsage keyCertSign+cRLSign) pass the 6.1.2 and 6.1.4a profiles."""
    text = text_of(pki.tls_ca.cert)
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in text
    root, tls_ca = pki.root.cert.read_bytes(), pki.tls_ca.cert.read_bytes()
    assert errors_of(lint(root, "interconnection-ca")) == set()
    tls_report = lint(tls_ca, "tls-ca", issuer=root)
    assert tls_report.compliant and tls_report.findings == ()
    # Control: the TLS CA is not an interconnection CA (pathlen 0), so that profile must refuse.
    assert errors_of(lint(tls_ca, "interconnection-ca", issuer=root)) == {
        "interconnection_ca.path_length"
    }


def test_openssl_server_leaf_is_compliant_and_validates(pki: OpenSSLPKI, crl: Path) -> None:
    """R2-R4, R12-R14, R16, R24, R25: an OpenSSL ECDSA P-256/SHA-256 server certificate (critical
    keyUsage digitalSignature, EKU serverAuth, CRL DP, SAN DNS) lints clean and validates against
    the OpenSSL root with the OpenSSL-made v2 CRL; openssl verify agrees."""
    leaf = pki.tls_ca.issue("server", "server")
    text = text_of(leaf)
    for expected in (
        "Version: 3 (0x2)",
        "Signature Algorithm: ecdsa-with-SHA256",
        "NIST CURVE: P-256",
        "X509v3 Key Usage: critical\n                Digital Signature",
        "TLS Web Server Authentication",
        f"URI:{CRL_URL}",
        f"DNS:{SERVER_NAME}",
    ):
        assert expected in text
    assert "Version 2 (0x1)" in text_of(crl)

    report = lint(
        leaf.read_bytes(), "tls-entity", role="server", issuer=pki.tls_ca.cert.read_bytes()
    )
    assert report.compliant, report.to_text()
    assert report.findings == ()
    verified = pki.validator(crl).verify(
        leaf.read_bytes(), [pki.tls_ca.cert.read_bytes()], role="server"
    )
    assert [c.subject.rfc4514_string() for c in verified.chain] == [
        f"CN={SERVER_NAME},O=capif8sec interop,C=SE",
        "CN=openssl tls-ca,O=capif8sec interop,C=SE",
        "CN=openssl root CA,O=capif8sec interop,C=SE",
    ]
    assert verified.revocation[0].startswith("good (CRL #1 of CN=openssl tls-ca")
    assert verified.identities.dns_names == (SERVER_NAME,)
    openssl(
        "verify", "-CAfile", pki.root.cert.name, "-untrusted", pki.tls_ca.cert.name,
        "-crl_check", "-CRLfile", crl.name, "-purpose", "sslserver", leaf.name,
        cwd=pki.directory,
    )  # fmt: skip


def test_openssl_client_leaf_validates_as_client_only(pki: OpenSSLPKI, crl: Path) -> None:
    """R13, R58: an OpenSSL clientAuth certificate with a URI SAN is accepted as a client and
    refused as a server (ee.eku_role)."""
    leaf = pki.tls_ca.issue("client", "client", cn="rof-openssl")
    verified = pki.validator(crl).verify(
        leaf.read_bytes(), [pki.tls_ca.cert.read_bytes()], role="client"
    )
    assert verified.identities.uris == ("urn:capif:rof:rof-openssl",)
    with pytest.raises(ProfileViolation) as caught:
        pki.verify(leaf, crl, role="server")
    assert caught.value.rule == "chain.element_profile"
    assert errors_of(caught.value.reports[0]) == {"ee.eku_role"}


def test_openssl_revoked_leaf_is_refused(tmp_path: Path) -> None:
    """R25: a leaf revoked with ``openssl ca -revoke`` is on OpenSSL's next CRL, and capif8sec
    refuses it with CertificateRevoked (serial and reason from the OpenSSL CRL entry)."""
    pki = OpenSSLPKI.make(tmp_path)
    good = pki.tls_ca.issue("good", "server")
    bad = pki.tls_ca.issue("bad", "server")
    pki.tls_ca.revoke(bad, "keyCompromise")
    crl = pki.tls_ca.crl("tls-ca")
    serial = x509.load_pem_x509_certificate(bad.read_bytes()).serial_number
    assert f"{serial:X}" in text_of(crl)
    assert "Key Compromise" in text_of(crl)
    pki.verify(good, crl)
    with pytest.raises(CertificateRevoked) as caught:
        pki.verify(bad, crl)
    assert caught.value.serial_number == serial
    assert caught.value.reason == "key_compromise"
    assert caught.value.rule == "chain.revocation"


@pytest.mark.parametrize(
    ("section", "digest", "shown", "problem"),
    [
        ("v1_crl", "sha256", "Version 1 (0x0)", "not version 2"),
        ("v2_crl", "sha1", "ecdsa-with-SHA1", "sha1"),
    ],
    ids=["v1-crl", "sha1-crl"],
)
def test_openssl_unusable_crl_fails_closed(
    pki: OpenSSLPKI, section: str, digest: str, shown: str, problem: str
) -> None:
    """R25: a v1 CRL and a SHA-1 signed CRL, both made by ``openssl ca -gencrl``, are not used:
    revocation status is unknown and validation fails closed (RevocationUnknown, chain.crl)."""
    crl = pki.tls_ca.crl(f"tls-ca-{section}-{digest}", section=section, digest=digest)
    assert shown in text_of(crl)
    leaf = pki.tls_ca.issue(f"server-for-{section}-{digest}", "server")
    with pytest.raises(RevocationUnknown) as caught:
        pki.verify(leaf, crl)
    assert caught.value.rule == "chain.crl"
    assert problem in str(caught.value)


# --------------------------------------------------------------------------- (b)-(e) refusals


def test_openssl_sha1_leaf_breaks_signature_hash(pki: OpenSSLPKI, crl: Path) -> None:
    """R2: ``openssl x509 -req -sha1`` (which cryptography's builder will not do) gives an
    ecdsa-with-SHA1 certificate: common.signature_hash, and the chain is refused."""
    leaf = pki.tls_ca.issue("sha1", "server", digest="sha1")
    assert "Signature Algorithm: ecdsa-with-SHA1" in text_of(leaf)
    cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA1
    report = lint(
        leaf.read_bytes(), "tls-entity", role="server", issuer=pki.tls_ca.cert.read_bytes()
    )
    assert errors_of(report) == {"common.signature_hash"}
    # pyca's path builder already refuses the SHA-1 signature, before the profile lint.
    with pytest.raises(ChainValidationError) as caught:
        pki.verify(leaf, crl)
    assert caught.value.rule == "chain.path"


def test_openssl_rsa1024_leaf_breaks_rsa_key_size(pki: OpenSSLPKI, crl: Path) -> None:
    """R5: an OpenSSL RSA-1024 leaf: common.rsa_key_size, and chain validation refuses it with
    the element profile (pyca itself does not check leaf key sizes)."""
    leaf = pki.tls_ca.issue("rsa1024", "server", key="rsa1024")
    assert "Public-Key: (1024 bit)" in text_of(leaf)
    report = lint(
        leaf.read_bytes(), "tls-entity", role="server", issuer=pki.tls_ca.cert.read_bytes()
    )
    assert errors_of(report) == {"common.rsa_key_size"}
    with pytest.raises(ProfileViolation) as caught:
        pki.verify(leaf, crl)
    assert "common.rsa_key_size" in errors_of(caught.value.reports[0])


@pytest.mark.parametrize(
    ("section", "role", "rule", "shown"),
    [
        ("ee_no_key_usage", "server", "ee.key_usage_present", "TLS Web Server Authentication"),
        (
            "ee_key_usage_not_critical",
            "server",
            "common.extension_criticality",
            "X509v3 Key Usage: \n                Digital Signature",
        ),
        (
            "ee_key_encipherment_only",
            "server",
            "ee.key_usage_digital_signature",
            "X509v3 Key Usage: critical\n                Key Encipherment",
        ),
        ("ee_no_crl_dp", "server", "ee.crl_distribution_point", f"DNS:{SERVER_NAME}"),
        ("ee_client_auth_only", "server", "ee.eku_role", "TLS Web Client Authentication"),
    ],
    ids=[
        "no-key-usage",
        "key-usage-not-critical",
        "key-encipherment-only",
        "no-crl-dp",
        "client-auth-as-server",
    ],
)
def test_openssl_leaf_breaking_one_rule(
    pki: OpenSSLPKI, crl: Path, section: str, role: str, rule: str, shown: str
) -> None:
    """R12, R13, R14, R9: each OpenSSL leaf breaks exactly one 6.1.3a rule; lint names exactly
    that rule, and chain validation refuses the leaf for the same rule."""
    leaf = pki.tls_ca.issue(section, section)
    text = text_of(leaf)
    assert shown in text
    if section == "ee_no_key_usage":
        assert "Key Usage" not in text.replace("Extended Key Usage", "")
    if section == "ee_no_crl_dp":
        assert "CRL Distribution Points" not in text
    report = lint(leaf.read_bytes(), "tls-entity", role=role, issuer=pki.tls_ca.cert.read_bytes())
    assert errors_of(report) == {rule}, report.to_text()
    with pytest.raises(ProfileViolation) as caught:
        pki.verify(leaf, crl, role=role)
    assert caught.value.rule == "chain.element_profile"
    assert errors_of(caught.value.reports[0]) == {rule}


def test_openssl_leaf_without_crl_dp_passes_under_the_deviation(pki: OpenSSLPKI, crl: Path) -> None:
    """R14: the named deviation no-crl-distribution-point lets the OpenSSL leaf without CRL DP
    through, is recorded, and revocation is still checked against the CRL at hand."""
    leaf = pki.tls_ca.issue("no-cdp-deviation", "ee_no_crl_dp")
    report = lint(
        leaf.read_bytes(), "tls-entity", role="server", deviations=["no-crl-distribution-point"]
    )
    assert report.compliant and report.deviations == ("no-crl-distribution-point",)
    verified = pki.validator(crl, deviations=["no-crl-distribution-point"]).verify(
        leaf.read_bytes(), [pki.tls_ca.cert.read_bytes()], role="server"
    )
    assert verified.deviations == ("no-crl-distribution-point",)
    assert verified.revocation[0].startswith("good (CRL #1")


def test_openssl_v1_certificate_breaks_version(pki: OpenSSLPKI) -> None:
    """R1: ``openssl x509 -req`` without extensions makes a v1 certificate in OpenSSL 3.0;
    capif8sec reports common.version (and skips the extension rules: no cascade)."""
    leaf = pki.tls_ca.issue("v1", None)
    assert "Version: 1 (0x0)" in text_of(leaf)
    assert x509.load_pem_x509_certificate(leaf.read_bytes()).version is x509.Version.v1
    report = lint(
        leaf.read_bytes(), "tls-entity", role="server", issuer=pki.tls_ca.cert.read_bytes()
    )
    assert errors_of(report) == {"common.version"}


def test_openssl_refuses_a_signature_with_unused_bits_as_capif8sec_does(tmp_path: Path) -> None:
    """R24: a certificate whose signature BIT STRING claims an unused bit verifies under pyca
    alone; capif8sec refuses it at load time, and this test shows OpenSSL agrees (openssl verify
    fails with "invalid bit string bits left") while the original verifies."""
    pki = TestPKI()
    for _ in range(64):
        issued = pki.server_cert()
        outer, _ = _der.read_tlv(issued.cert.public_bytes(Encoding.DER))
        tbs, algorithm, signature = _der.iter_tlvs(outer.content)
        if not signature.content[-1] & 1:
            break
    assert not signature.content[-1] & 1
    bits = _der.encode(_der.BIT_STRING, b"\x01" + signature.content[1:])
    odd = _der.encode(_der.SEQUENCE, tbs.raw + algorithm.raw + bits)
    (tmp_path / "odd.der").write_bytes(odd)
    (tmp_path / "good.pem").write_bytes(issued.cert_pem)
    (tmp_path / "cas.pem").write_bytes(pki.tls_ca.cert_pem + pki.root_ca.cert_pem)
    openssl("x509", "-inform", "DER", "-in", "odd.der", "-out", "odd.pem", cwd=tmp_path)
    openssl("verify", "-CAfile", "cas.pem", "good.pem", cwd=tmp_path)
    refused = run_openssl("verify", "-CAfile", "cas.pem", "odd.pem", cwd=tmp_path)
    assert refused.returncode != 0
    assert "invalid bit string bits left" in refused.stderr
    with pytest.raises(CertificateParseError, match="unused bits"):
        lint(odd, "tls-entity", role="server")


# --------------------------------------------------------------------------- RSA (R3)


def test_openssl_rsa_signatures_pkcs1_warns_pss_does_not(tmp_path: Path) -> None:
    """R3: under an OpenSSL RSA-3072 TLS CA, a PKCS#1 v1.5 signed leaf is compliant with the
    common.rsa_pkcs1v15 warning; an RSASSA-PSS (SHA-256, salt 32) signed leaf is compliant
    without it, and validates with a PSS-signed OpenSSL CRL."""
    pki = OpenSSLPKI.make(tmp_path)
    rsa_ca = pki.root.issue_ca("rsa-tls-ca", key="rsa3072")
    ca_bytes = rsa_ca.cert.read_bytes()
    pkcs1 = rsa_ca.issue("pkcs1", "server")
    pss = rsa_ca.issue("pss", "server", sigopts=["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"])
    assert "Signature Algorithm: sha256WithRSAEncryption" in text_of(pkcs1)
    assert "Signature Algorithm: rsassaPss" in text_of(pss)

    pkcs1_report = lint(pkcs1.read_bytes(), "tls-entity", role="server", issuer=ca_bytes)
    assert pkcs1_report.compliant
    assert pkcs1_report.rule_ids(Severity.WARNING) == {"common.rsa_pkcs1v15"}
    pss_report = lint(pss.read_bytes(), "tls-entity", role="server", issuer=ca_bytes)
    assert pss_report.compliant and pss_report.findings == ()

    crl = rsa_ca.crl("rsa-tls-ca")
    validator = ChainValidator(pki.root.cert.read_bytes(), crls=[crl.read_bytes()])
    for leaf in (pkcs1, pss):
        verified = validator.verify(leaf.read_bytes(), [ca_bytes], role="server")
        assert verified.revocation[0].startswith("good (CRL #1 of CN=openssl rsa-tls-ca")


# --------------------------------------------------------------------------- the CLI


def cli_command() -> list[str]:
    """The installed ``capif8sec`` console script, or the same entry point through -c."""
    script = Path(sys.executable).parent / "capif8sec"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from capif8sec.cli import main; sys.exit(main())"]


def run_cli(*args: str | Path) -> tuple[int, str]:
    proc = subprocess.run(
        [*cli_command(), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


def test_cli_on_openssl_files(pki: OpenSSLPKI, crl: Path) -> None:
    """R1, R2, R11, R24, R25: ``capif8sec lint --format json`` with the OpenSSL root, TLS CA
    and CRL: the conformant leaf (PEM and DER) exits 0, a SHA-1 leaf 1 (common.signature_hash),
    a v1 leaf 1 (common.version), an OpenSSL CSR or private key 2 (unusable input)."""
    d = pki.directory
    good = pki.tls_ca.issue("cli-good", "server")
    good_der = d / "cli-good.der"
    openssl("x509", "-in", good.name, "-outform", "DER", "-out", good_der.name, cwd=d)
    sha1 = pki.tls_ca.issue("cli-sha1", "server", digest="sha1")
    v1 = pki.tls_ca.issue("cli-v1", None)
    chain: list[str | Path] = ["--ca", pki.root.cert, "--chain", pki.tls_ca.cert, "--crl", crl]

    for path in (good, good_der):
        code, out = run_cli("lint", "--role", "server", "--format", "json", *chain, path)
        assert code == 0, out
        (result,) = json.loads(out)["results"]
        assert result["file"] == str(path)
        assert result["compliant"] is True
        assert result["subject"] == f"CN={SERVER_NAME},O=capif8sec interop,C=SE"
        assert [f for f in result["findings"] if f["severity"] == "error"] == []

    for path, rule, clause in (
        (sha1, "common.signature_hash", "TS 33.310 6.1.1"),
        (v1, "common.version", "TS 33.310 6.1.1"),
    ):
        code, out = run_cli("lint", "--role", "server", "--format", "json", path)
        assert code == 1, out
        (result,) = json.loads(out)["results"]
        assert result["compliant"] is False
        errors = {(f["rule"], f["clause"]) for f in result["findings"] if f["severity"] == "error"}
        assert errors == {(rule, clause)}
        for finding in result["findings"]:
            assert finding["severity"] in {"error", "warning", "notice"}
            assert finding["message"]

    for path in (d / "cli-good.csr", d / "cli-good.key"):
        code, out = run_cli("lint", "--role", "server", "--format", "json", path)
        assert code == 2, out
        (result,) = json.loads(out)["results"]
        assert result["compliant"] is False and result["subject"] is None
        assert "no CERTIFICATE block" in result["error"]
