"""A test PKI whose certificates pass capif8sec's own TS 33.310 profiles (trustme-like).

::

    from capif8sec.testing import TestPKI

    pki = TestPKI()                                  # root CA -> TLS CA (pathLen 0)
    ccf = pki.server_cert("ccf.capif.example")       # CCF/AzF server certificate
    rof = pki.client_cert("rof-1")                   # ROF client cert, URI SAN urn:capif:rof:rof-1
    crl = pki.crl(revoked=[rof])                     # the TLS CA's CRL, PEM
    bad = pki.breaking("ee.key_usage_digital_signature", role="server")

Everything here is for tests and demos: keys are generated fresh, unencrypted, in memory.
:meth:`TestPKI.breaking` makes a certificate that breaks exactly one chosen rule, including the
ones cryptography's builder refuses to produce (v2, SHA-1 signatures, 21-octet serials, ...).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from capif8sec import _der
from capif8sec.certs.rules import NF_TYPES_OID
from capif8sec.errors import UsageError

__all__ = [
    "CA",
    "DEFAULT_CRL_URL",
    "BrokenCertificate",
    "CertSpec",
    "IssuedCert",
    "TestPKI",
    "breakable_rules",
    "generate_key",
]

PrivateKey = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | dsa.DSAPrivateKey | ed25519.Ed25519PrivateKey
)
#: CDP URI written into test end-entity certificates.
DEFAULT_CRL_URL = "http://crl.capif.example/tls-ca.crl"

_KEY_TYPES = (
    "p256",
    "p384",
    "p521",
    "p224",
    "secp256k1",
    "rsa1024",
    "rsa2048",
    "rsa3072",
    "rsa4096",
    "rsa2048-e3",
    "dsa2048",
    "ed25519",
)


def generate_key(key_type: str = "p256") -> PrivateKey:
    """A fresh private key: ``p256`` (default), ``p384``, ``rsa2048``, ``rsa3072``, ``rsa4096``.

    Rule-breaking types (``p224``, ``secp256k1``, ``rsa1024``, ``rsa2048-e3``, ``dsa2048``,
    ``p521``, ``ed25519``) exist for negative tests.
    """
    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
        "p224": ec.SECP224R1(),
        "secp256k1": ec.SECP256K1(),
    }
    if key_type in curves:
        return ec.generate_private_key(curves[key_type])
    if key_type == "rsa2048-e3":
        return rsa.generate_private_key(public_exponent=3, key_size=2048)
    if key_type.startswith("rsa") and key_type[3:].isdigit():
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "dsa2048":
        return dsa.generate_private_key(2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise UsageError(f"unknown key type {key_type!r}; choose one of {', '.join(_KEY_TYPES)}")


def _name(common_name: str, organization: str = "capif8sec test") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


_EE_KU = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
_CA_KU = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
_EKU = {
    "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "both": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
}


@frozen
class CertSpec:
    """Everything that goes into one certificate, as data (``attrs.evolve`` it to vary one thing).

    The defaults describe a conformant TS 33.310 6.1.3a end-entity certificate.
    """

    subject: x509.Name
    key_type: str = "p256"
    hash_name: str = "sha256"
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    validity_days: int = 365
    ca: bool | None = False
    path_length: int | None = None
    basic_constraints_critical: bool = False
    key_usage: x509.KeyUsage | None = _EE_KU
    key_usage_critical: bool = True
    eku: tuple[x509.ObjectIdentifier, ...] | None = None
    eku_critical: bool = False
    crl_urls: tuple[str, ...] = (DEFAULT_CRL_URL,)
    crl_dp_critical: bool = False
    dns_names: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    san_critical: bool = False
    subject_key_identifier: bool = True
    authority_key_identifier: bool = True
    nf_types: tuple[str, ...] = ()
    extra_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()
    #: Post-signing DER edits for what the builder refuses: ``version1``, ``serial21``,
    #: ``serial0``, ``swap_validity``, ``sha1``, ``duplicate_extension``.
    der_edits: tuple[str, ...] = ()


@frozen
class IssuedCert:
    """A certificate with its private key and the chain that goes with it."""

    cert: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    #: Certificates above the leaf up to (not including) the root: what a peer sends.
    intermediates: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """Leaf then intermediates, PEM (what ``SSLContext.load_cert_chain`` wants)."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.intermediates)
        )

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM.  Test material only."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> None:
        """Write the chain PEM and the key PEM (mode 0600)."""
        Path(cert_path).write_bytes(self.chain_pem)
        _write_secret(Path(key_path), self.key_pem)


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


class CA:
    """A certificate authority that issues certificates and CRLs."""

    def __init__(self, cert: x509.Certificate, key: PrivateKey, parent: CA | None = None) -> None:
        self.cert = cert
        self.private_key = key
        self.parent = parent
        self._revoked: dict[int, tuple[dt.datetime, x509.ReasonFlags | None]] = {}
        self._crl_number = 0

    def __repr__(self) -> str:
        return f"<CA {self.cert.subject.rfc4514_string()}>"

    @classmethod
    def root(cls, common_name: str = "capif8sec test root CA", key_type: str = "p256") -> CA:
        """A self-signed root CA (pathLenConstraint absent), valid ten years."""
        key = generate_key(key_type)
        spec = CertSpec(
            subject=_name(common_name),
            key_type=key_type,
            ca=True,
            key_usage=_CA_KU,
            basic_constraints_critical=True,
            crl_urls=(),
            validity_days=3650,
            authority_key_identifier=False,
        )
        return cls(_build(spec, key, spec.subject, key), key)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """This CA and its ancestors, up to but excluding the root."""
        out: list[x509.Certificate] = []
        ca: CA | None = self
        while ca is not None and ca.parent is not None:
            out.append(ca.cert)
            ca = ca.parent
        return tuple(out)

    @property
    def cert_pem(self) -> bytes:
        """This CA's certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_ca(
        self,
        common_name: str,
        *,
        path_length: int | None = 0,
        key_type: str = "p256",
        **changes: object,
    ) -> CA:
        """A subordinate CA: ``path_length=0`` makes a TS 33.310 6.1.4a TLS CA."""
        spec = CertSpec(
            subject=_name(common_name),
            key_type=key_type,
            ca=True,
            path_length=path_length,
            key_usage=_CA_KU,
            basic_constraints_critical=True,
            crl_urls=(),
            validity_days=1825,
        )
        spec = attrs.evolve(spec, **changes)  # type: ignore[arg-type]
        key = generate_key(spec.key_type)
        return CA(self.sign(spec, key), key, parent=self)

    def issue(self, spec: CertSpec, key: PrivateKey | None = None) -> IssuedCert:
        """Issue a certificate described by ``spec`` (a fresh key of ``spec.key_type``)."""
        key = key if key is not None else generate_key(spec.key_type)
        return IssuedCert(self.sign(spec, key), key, self.chain)

    def sign(self, spec: CertSpec, key: PrivateKey) -> x509.Certificate:
        """Sign ``spec`` for the public half of ``key``."""
        return _build(spec, key, self.cert.subject, self.private_key, self.cert)

    def revoke(
        self,
        cert: x509.Certificate | IssuedCert,
        reason: x509.ReasonFlags | None = None,
        when: dt.datetime | None = None,
    ) -> None:
        """Put a certificate on this CA's next CRL."""
        c = cert.cert if isinstance(cert, IssuedCert) else cert
        self._revoked[c.serial_number] = (when or _now() - dt.timedelta(minutes=1), reason)

    def crl(
        self,
        *,
        revoked: Iterable[x509.Certificate | IssuedCert] = (),
        reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        hash_name: str = "sha256",
        signer: PrivateKey | None = None,
    ) -> x509.CertificateRevocationList:
        """A CRL of this CA listing everything revoked so far plus ``revoked``."""
        for cert in revoked:
            self.revoke(cert, reason)
        self._crl_number += 1
        this_update = this_update or _now() - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(this_update)
            .next_update(next_update or this_update + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        for serial, (when, why) in sorted(self._revoked.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if why is not None:
                entry = entry.add_extension(x509.CRLReason(why), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        key = signer or self.private_key
        return builder.sign(key, _HASHES[hash_name]())  # type: ignore[arg-type]

    def crl_pem(self, **kwargs: object) -> bytes:
        """:meth:`crl` as PEM."""
        return self.crl(**kwargs).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _build(
    spec: CertSpec,
    key: PrivateKey,
    issuer_name: x509.Name,
    issuer_key: PrivateKey,
    issuer_cert: x509.Certificate | None = None,
) -> x509.Certificate:
    not_before = spec.not_before or _now() - dt.timedelta(hours=1)
    not_after = spec.not_after or not_before + dt.timedelta(days=spec.validity_days)
    pub = key.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if spec.ca is not None:
        b = b.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None),
            critical=spec.basic_constraints_critical,
        )
    if spec.key_usage is not None:
        b = b.add_extension(spec.key_usage, critical=spec.key_usage_critical)
    if spec.eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=spec.eku_critical)
    if spec.crl_urls:
        b = b.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(u) for u in spec.crl_urls], None, None, None
                    )
                ]
            ),
            critical=spec.crl_dp_critical,
        )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
    names += [x509.UniformResourceIdentifier(u) for u in spec.uris]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in spec.ip_addresses]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=spec.san_critical)
    if spec.subject_key_identifier:
        b = b.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(pub),
            critical=False,
        )
    if spec.authority_key_identifier:
        if issuer_cert is not None:
            try:
                ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
                aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
            except x509.ExtensionNotFound:
                aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        else:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        b = b.add_extension(aki, critical=False)
    if spec.nf_types:
        value = _der.encode(
            _der.SEQUENCE, b"".join(_der.encode(_der.IA5STRING, t.encode()) for t in spec.nf_types)
        )
        b = b.add_extension(x509.UnrecognizedExtension(NF_TYPES_OID, value), critical=False)
    for ext, critical in spec.extra_extensions:
        b = b.add_extension(ext, critical=critical)
    signing_hash = "sha256" if spec.hash_name == "sha1" else spec.hash_name
    algorithm = (
        None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else _HASHES[signing_hash]()
    )
    cert = b.sign(issuer_key, algorithm)  # type: ignore[arg-type]
    edits = spec.der_edits + (("sha1",) if spec.hash_name == "sha1" else ())
    return _edit_der(cert, issuer_key, edits) if edits else cert


# ----------------------------------------------------------------------------- DER surgery

_SIG_OIDS = {
    ("ec", "sha1"): "1.2.840.10045.4.1",
    ("ec", "sha256"): "1.2.840.10045.4.3.2",
    ("ec", "sha384"): "1.2.840.10045.4.3.3",
    ("rsa", "sha1"): "1.2.840.113549.1.1.5",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("rsa", "sha384"): "1.2.840.113549.1.1.12",
}


def _edit_der(
    cert: x509.Certificate, issuer_key: PrivateKey, edits: Sequence[str]
) -> x509.Certificate:
    outer, _ = _der.read_tlv(cert.public_bytes(serialization.Encoding.DER))
    tbs_tlv = next(_der.iter_tlvs(outer.content))
    parts = [t.raw for t in _der.iter_tlvs(tbs_tlv.content)]
    base = 1 if parts[0][0] == 0xA0 else 0
    kind = "rsa" if isinstance(issuer_key, rsa.RSAPrivateKey) else "ec"
    hash_name = "sha256"
    for edit in edits:
        if edit == "version1":  # v1: no version field, no extensions
            if base:
                del parts[0]
                base = 0
            if parts[-1][0] == 0xA3:
                del parts[-1]
        elif edit == "serial21":
            parts[base] = _der.encode_integer(1 << 165)
        elif edit == "serial0":
            parts[base] = _der.encode_integer(0)
        elif edit == "swap_validity":
            validity, _ = _der.read_tlv(parts[base + 3])
            a, b = list(_der.iter_tlvs(validity.content))
            parts[base + 3] = _der.encode(_der.SEQUENCE, b.raw + a.raw)
        elif edit == "sha1":
            hash_name = "sha1"
        elif edit == "duplicate_extension":
            exts_outer, _ = _der.read_tlv(parts[-1])
            seq, _ = _der.read_tlv(exts_outer.content)
            items = [t.raw for t in _der.iter_tlvs(seq.content)]
            parts[-1] = _der.encode(0xA3, _der.encode(_der.SEQUENCE, b"".join(items + items[-1:])))
        else:
            raise UsageError(f"unknown DER edit {edit!r}")
    oid = _der.encode_oid(_SIG_OIDS[(kind, hash_name)])
    alg = _der.encode(_der.SEQUENCE, oid + (_der.encode(_der.NULL, b"") if kind == "rsa" else b""))
    parts[base + 1] = alg
    tbs = _der.encode(_der.SEQUENCE, b"".join(parts))
    h = _HASHES[hash_name]()
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        signature = issuer_key.sign(tbs, padding.PKCS1v15(), h)
    elif isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(tbs, ec.ECDSA(h))
    else:
        raise UsageError("DER edits need an RSA or EC issuer key")
    der = _der.encode(_der.SEQUENCE, tbs + alg + _der.encode(_der.BIT_STRING, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


# ----------------------------------------------------------------------------- the PKI


@frozen
class BrokenCertificate:
    """A certificate made to break one rule, with what to lint it against."""

    rule: str
    cert: x509.Certificate
    issuer: x509.Certificate
    profile: str
    role: str | None
    private_key: PrivateKey = field(repr=False)


class TestPKI:
    """Root CA -> (optional interconnection CA) -> TLS CA -> end entities, all conformant.

    :param key_type: key type of the CAs and, by default, of the end entities.
    :param interconnection: put an interconnection CA (6.1.2) between the root and the TLS CA.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, key_type: str = "p256", *, interconnection: bool = False) -> None:
        self.key_type = key_type
        self.root_ca = CA.root(key_type=key_type)
        self._interconnection: CA | None = None
        parent = self.interconnection_ca if interconnection else self.root_ca
        self.tls_ca = parent.issue_ca("capif8sec test TLS CA", path_length=0, key_type=key_type)

    def __repr__(self) -> str:
        return f"<TestPKI key_type={self.key_type}>"

    @property
    def interconnection_ca(self) -> CA:
        """An interconnection CA (pathLenConstraint 1) under the root, made on first use."""
        if self._interconnection is None:
            self._interconnection = self.root_ca.issue_ca(
                "capif8sec test interconnection CA", path_length=1, key_type=self.key_type
            )
        return self._interconnection

    @property
    def trust_anchor_pem(self) -> bytes:
        """The root CA certificate, PEM."""
        return self.root_ca.cert_pem

    def spec(self, role: str, **changes: object) -> CertSpec:
        """The conformant default spec for a ``server`` or ``client`` end entity, varied."""
        if role == "server":
            base = CertSpec(
                subject=_name("ccf.capif.example"),
                key_type=self.key_type,
                eku=_EKU["server"],
                dns_names=("ccf.capif.example",),
            )
        elif role == "client":
            base = CertSpec(
                subject=_name("rof-1"),
                key_type=self.key_type,
                eku=_EKU["client"],
                uris=("urn:capif:rof:rof-1",),
            )
        else:
            raise UsageError(f"role must be server or client, not {role!r}")
        return attrs.evolve(base, **changes)  # type: ignore[arg-type]

    def server_cert(
        self,
        *dns_names: str,
        uris: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        key_type: str | None = None,
        **changes: object,
    ) -> IssuedCert:
        """A CCF/AzF server certificate (DNS SAN ``ccf.capif.example`` unless names are given)."""
        names = dns_names or ("ccf.capif.example",)
        spec = self.spec(
            "server",
            subject=_name(names[0]),
            dns_names=names,
            uris=tuple(uris),
            ip_addresses=tuple(ip_addresses),
            key_type=key_type or self.key_type,
            **changes,
        )
        return self.tls_ca.issue(spec)

    def client_cert(
        self,
        rof_id: str = "rof-1",
        *,
        dns_names: Sequence[str] = (),
        key_type: str | None = None,
        **changes: object,
    ) -> IssuedCert:
        """An ROF client certificate with URI SAN ``urn:capif:rof:<rof_id>``."""
        spec = self.spec(
            "client",
            subject=_name(rof_id),
            uris=(f"urn:capif:rof:{rof_id}",),
            dns_names=tuple(dns_names),
            key_type=key_type or self.key_type,
            **changes,
        )
        return self.tls_ca.issue(spec)

    def nf_cert(
        self, role: str = "both", fqdn: str = "nf1.5gc.example", **changes: object
    ) -> IssuedCert:
        """A TS 33.310 6.1.3c NF certificate (critical SAN, EKU, AKI, nfTypes, C/O subject)."""
        spec = attrs.evolve(_spec_of_nf(self, role), dns_names=(fqdn,), **changes)  # type: ignore[arg-type]
        return self.tls_ca.issue(spec)

    def crl(self, revoked: Iterable[x509.Certificate | IssuedCert] = (), **kwargs: object) -> bytes:
        """The TLS CA's CRL as PEM, listing ``revoked`` (and everything revoked before)."""
        return self.tls_ca.crl_pem(revoked=revoked, **kwargs)

    def breaking(self, rule: str, role: str = "server") -> BrokenCertificate:
        """A certificate that breaks exactly ``rule`` (and no other error rule).

        See :func:`breakable_rules` for the rules this can break.
        """
        try:
            maker = _BREAKERS[rule]
        except KeyError:
            raise UsageError(f"no breaker for rule {rule!r}") from None
        return maker(self, role)

    def write(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the files of ``capif8sec pki DIR``; keys mode 0600.  Returns name -> path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        server, client = self.server_cert(), self.client_cert()
        files: dict[str, bytes] = {
            "root-ca.pem": self.root_ca.cert_pem,
            "tls-ca.pem": self.tls_ca.cert_pem,
            "ccf-server.pem": server.chain_pem,
            "rof-client.pem": client.chain_pem,
            "tls-ca.crl.pem": self.crl(),
        }
        secrets = {
            "root-ca.key": _key_pem(self.root_ca.private_key),
            "tls-ca.key": _key_pem(self.tls_ca.private_key),
            "ccf-server.key": server.key_pem,
            "rof-client.key": client.key_pem,
        }
        paths = {}
        for name, data in files.items():
            (out / name).write_bytes(data)
            paths[name] = out / name
        for name, data in secrets.items():
            _write_secret(out / name, data)
            paths[name] = out / name
        return paths


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ----------------------------------------------------------------------------- rule breakers

Breaker = Callable[[TestPKI, str], BrokenCertificate]
_BREAKERS: dict[str, Breaker] = {}


def breakable_rules() -> list[str]:
    """The rule ids :meth:`TestPKI.breaking` knows how to break."""
    return sorted(_BREAKERS)


def _ee(
    rule: str, profile: str = "tls-entity", *, issuer_key: str | None = None, **changes: object
) -> Breaker:
    def make(pki: TestPKI, role: str) -> BrokenCertificate:
        ca = pki.tls_ca
        if issuer_key is not None:
            ca = pki.root_ca.issue_ca("capif8sec odd TLS CA", path_length=0, key_type=issuer_key)
        if profile == "sba-nf":
            issued = ca.issue(attrs.evolve(_spec_of_nf(pki, role), **changes))  # type: ignore[arg-type]
        else:
            issued = ca.issue(pki.spec(role, **changes))
        return BrokenCertificate(rule, issued.cert, ca.cert, profile, role, issued.private_key)

    return make


def _spec_of_nf(pki: TestPKI, role: str) -> CertSpec:
    return CertSpec(
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "5gc.mnc001.mcc240.3gppnetwork.org"),
            ]
        ),
        key_type=pki.key_type,
        eku=_EKU[role],
        dns_names=("nf1.5gc.example",),
        uris=("urn:uuid:6f1c2c9e-0d4b-4c44-9d7b-1c2f2b0b7a11",),
        san_critical=True,
        nf_types=("NEF",),
    )


def _ca_breaker(rule: str, profile: str, **changes: object) -> Breaker:
    def make(pki: TestPKI, role: str) -> BrokenCertificate:
        settings: dict[str, Any] = {"path_length": 0 if profile == "tls-ca" else 1}
        settings.update(changes)
        ca = pki.root_ca.issue_ca("capif8sec broken CA", key_type=pki.key_type, **settings)
        return BrokenCertificate(rule, ca.cert, pki.root_ca.cert, profile, None, ca.private_key)

    return make


_NO_KU_CERTSIGN = x509.KeyUsage(False, False, False, False, False, True, False, False, False)
_KU_KEYENC_ONLY = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
_AFTER_2030 = dt.datetime(2031, 6, 1, tzinfo=dt.UTC)

_BREAKERS.update(
    {
        "common.version": _ee("common.version", der_edits=("version1",)),
        "common.serial_number": _ee("common.serial_number", der_edits=("serial21",)),
        "common.validity_order": _ee("common.validity_order", der_edits=("swap_validity",)),
        "common.signature_algorithm": _ee(
            "common.signature_algorithm", issuer_key="dsa2048", key_type="rsa2048"
        ),
        "common.signature_hash": _ee("common.signature_hash", hash_name="sha1"),
        "common.rsa_pkcs1v15": _ee("common.rsa_pkcs1v15", issuer_key="rsa3072"),
        "common.public_key_algorithm": _ee("common.public_key_algorithm", key_type="dsa2048"),
        "common.ec_curve": _ee("common.ec_curve", key_type="p224"),
        "common.ec_curve_recommended": _ee("common.ec_curve_recommended", key_type="ed25519"),
        "common.rsa_key_size": _ee("common.rsa_key_size", key_type="rsa1024"),
        "common.rsa_exponent": _ee("common.rsa_exponent", key_type="rsa2048-e3"),
        "common.strength_after_2030": _ee(
            "common.strength_after_2030",
            key_type="rsa2048",
            not_before=_AFTER_2030 - dt.timedelta(days=400),
            not_after=_AFTER_2030,
        ),
        "common.signer_strength": _ee("common.signer_strength", key_type="p384"),
        "common.extensions_decodable": _ee(
            "common.extensions_decodable", der_edits=("duplicate_extension",)
        ),
        "common.extension_criticality": _ee("common.extension_criticality", eku_critical=True),
        "common.name_form": _ee(
            "common.name_form",
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccf.capif.example")]),
        ),
        "ee.key_usage_present": _ee("ee.key_usage_present", key_usage=None),
        "ee.key_usage_digital_signature": _ee(
            "ee.key_usage_digital_signature", key_usage=_KU_KEYENC_ONLY
        ),
        "ee.eku_role": _ee("ee.eku_role", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
        "ee.eku_any": _ee(
            "ee.eku_any",
            eku=(
                ExtendedKeyUsageOID.SERVER_AUTH,
                ExtendedKeyUsageOID.CLIENT_AUTH,
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ),
        ),
        "ee.crl_distribution_point": _ee("ee.crl_distribution_point", crl_urls=()),
        "ee.not_ca": _ee("ee.not_ca", ca=True, path_length=None),
        "tls_entity.identity": _ee("tls_entity.identity", dns_names=(), uris=()),
        "sba_nf.extended_key_usage": _ee("sba_nf.extended_key_usage", "sba-nf", eku=None),
        "sba_nf.authority_key_identifier": _ee(
            "sba_nf.authority_key_identifier", "sba-nf", authority_key_identifier=False
        ),
        "sba_nf.subject_alt_name": _ee("sba_nf.subject_alt_name", "sba-nf", dns_names=(), uris=()),
        "sba_nf.nf_types": _ee("sba_nf.nf_types", "sba-nf", nf_types=()),
        "sba_nf.server_dns_id": _ee(
            "sba_nf.server_dns_id", "sba-nf", dns_names=(), ip_addresses=("192.0.2.10",)
        ),
        "sba_nf.validity": _ee("sba_nf.validity", "sba-nf", validity_days=4 * 365),
        "ca.basic_constraints": _ca_breaker("ca.basic_constraints", "tls-ca", ca=None),
        "ca.key_usage": _ca_breaker("ca.key_usage", "tls-ca", key_usage=_NO_KU_CERTSIGN),
        "tls_ca.path_length": _ca_breaker("tls_ca.path_length", "tls-ca", path_length=None),
        "interconnection_ca.path_length": _ca_breaker(
            "interconnection_ca.path_length", "interconnection-ca", path_length=0
        ),
    }
)
