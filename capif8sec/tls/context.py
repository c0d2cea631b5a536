"""TLS context builders for both sides of CAPIF-8 (R27-R41).

A CCF is a TLS server (the ROF calls it to deliver or revoke) and a TLS client (it calls the ROF
for a resource owner's authorization); so is an ROF.  Both builders force the two decisions a TLS
endpoint needs, rustls-style, with no default for either:

- what to present: an :class:`Identity` (certificate chain and key), or
  :data:`PRESENT_NO_CERTIFICATE` for a client that proves itself in-channel;
- how to verify the peer: a :class:`PeerVerification` (trust anchors, CRLs, expected identity,
  profile), or, on a server only, :data:`CLIENT_CERTIFICATE_NOT_REQUESTED`.

They return :class:`CapifContext`, a real :class:`ssl.SSLContext` subclass (what asyncio and
libraries taking an ``ssl.SSLContext`` accept) that also carries what the post-handshake check
(:func:`capif8sec.tls.check_connection`) needs.  A server context can have its credentials and
trust material replaced while it serves (:meth:`CapifContext.rotate`).
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib.resources
import os
import ssl
import tempfile
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

from attrs import field, frozen
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from capif8sec.certs import ChainValidator, CrlFetcher, load_certificates
from capif8sec.certs.parse import CertificateInput, CrlInput
from capif8sec.errors import CertificateError, TlsConfigError, UsageError
from capif8sec.tls._openssl import disable_session_cache
from capif8sec.tls.binding import tls_server_end_point
from capif8sec.tls.profile import TS33210, TlsProfile

__all__ = [
    "CLIENT_CERTIFICATE_NOT_REQUESTED",
    "PRESENT_NO_CERTIFICATE",
    "CapifContext",
    "Identity",
    "PeerVerification",
    "client_context",
    "server_context",
]


#: The SNI each server-side connection asked for (filled by the SNI callback).
_sni: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_sni_lock = threading.Lock()


def requested_server_name(conn: ssl.SSLSocket | ssl.SSLObject) -> str | None:
    """The server name a client asked for: SNI on the server side, server_hostname on a client."""
    if not conn.server_side:
        return conn.server_hostname
    with _sni_lock:
        return _sni.get(conn)


class _Choice(enum.Enum):
    CLIENT_CERTIFICATE_NOT_REQUESTED = "client certificate not requested"
    PRESENT_NO_CERTIFICATE = "present no certificate"

    def __repr__(self) -> str:
        return self.name


#: A server that does not ask for a client certificate: the ROF must then authenticate another
#: way (PSK proof or password inside the channel).  An explicit, loudly named choice.
CLIENT_CERTIFICATE_NOT_REQUESTED = _Choice.CLIENT_CERTIFICATE_NOT_REQUESTED
#: A client that presents no certificate (it authenticates in-channel).
PRESENT_NO_CERTIFICATE = _Choice.PRESENT_NO_CERTIFICATE


@frozen
class Identity:
    """What an endpoint presents: its certificate chain (leaf first, no trust anchor) and key.

    The key never appears in ``repr``.  Load from files with :meth:`from_files`.
    """

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    password: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_files(
        cls,
        chain: str | os.PathLike[str],
        key: str | os.PathLike[str],
        password: bytes | None = None,
    ) -> Identity:
        """Read the chain and key PEM files."""
        try:
            return cls(Path(chain).read_bytes(), Path(key).read_bytes(), password)
        except OSError as exc:
            raise TlsConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None

    @property
    def certificates(self) -> list[x509.Certificate]:
        """The chain, parsed."""
        return load_certificates(self.chain_pem)


def _anchors(value: CertificateInput | Iterable[CertificateInput]) -> tuple[CertificateInput, ...]:
    if isinstance(value, (bytes, bytearray, memoryview, str, x509.Certificate)):
        return (value,)
    return tuple(value)


def _crls(value: Iterable[CrlInput]) -> tuple[CrlInput, ...]:
    return tuple(value)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TlsConfigError("deviations must be a collection of names, not a string")
    return tuple(value)


@frozen
class PeerVerification:
    """How to verify the peer: trust anchors, CRLs and the identity expected of it.

    :param trust_anchors: root (or TLS CA) certificates, PEM/DER or objects.
    :param crls: CRLs of the issuers of the peer's chain.
    :param crl_fetcher: injected CRL fetcher (the library does no network I/O).
    :param expected_identity: for a client: the server's reference identity (DNS name, IP
        address or URI); when unset, the ``server_hostname`` of the connection is used.
    :param profile: ``tls-entity`` (6.1.3a, default) or ``sba-nf`` (6.1.3c).
    :param deviations: named deviations for the certificate checks.
    """

    trust_anchors: tuple[CertificateInput, ...] = field(converter=_anchors)
    crls: tuple[CrlInput, ...] = field(converter=_crls, default=())
    crl_fetcher: CrlFetcher | None = None
    expected_identity: str | None = None
    profile: str = "tls-entity"
    deviations: tuple[str, ...] = field(converter=_names, default=())
    clock_skew: dt.timedelta = dt.timedelta(0)

    def validator(self) -> ChainValidator:
        """The chain validator for this configuration."""
        return ChainValidator(
            self.trust_anchors,
            profile=self.profile,
            crls=self.crls,
            crl_fetcher=self.crl_fetcher,
            deviations=self.deviations,
            clock_skew=self.clock_skew,
        )


@frozen
class _Settings:
    """What the post-handshake check needs to know about the context a connection used."""

    side: str
    profile: TlsProfile
    validator: ChainValidator | None
    expected_identity: str | None
    presents_certificate: bool
    #: ``certificate`` (certificate contexts) or ``psk`` (capif8sec.tls.psk contexts).
    mode: str = "certificate"
    #: For a PSK client context: the identity it offers.
    psk_identity: str | None = None
    #: For a certificate server context: tls-server-end-point of the certificate it presents.
    own_end_point: bytes | None = None


class CapifContext(ssl.SSLContext):
    """An :class:`ssl.SSLContext` built by capif8sec, carrying its post-handshake settings."""

    _capif8sec: _Settings
    _capif8sec_alpn: tuple[str, ...]
    _capif8sec_current: CapifContext | None
    _capif8sec_lock: threading.Lock
    #: Server contexts: whether OpenSSL's session cache is off (no session-ID resumption, R38).
    _capif8sec_session_cache_off: bool = False

    @property
    def settings(self) -> _Settings:
        """The settings the post-handshake check applies to connections of this context."""
        return self._capif8sec

    def rotate(
        self,
        *,
        present: Identity | None = None,
        verify: PeerVerification | None = None,
    ) -> None:
        """Replace the certificate/key and/or the trust material of a live server context.

        New connections use the new material from their ClientHello on; established ones keep
        what they negotiated; nothing restarts.  Only server contexts can rotate.
        """
        if self._capif8sec.side != "server" or self._capif8sec_current is None:
            raise TlsConfigError("only server contexts built by server_context() can rotate")
        current = self._capif8sec_current
        if verify is not None and current._capif8sec_verify is CLIENT_CERTIFICATE_NOT_REQUESTED:
            raise TlsConfigError(
                "rotation replaces material, not the client-certificate mode; build a new context"
            )
        inner = _build_server(
            present if present is not None else current._capif8sec_identity,
            verify if verify is not None else current._capif8sec_verify,
            current._capif8sec.profile,
            current._capif8sec_alpn,
        )
        with self._capif8sec_lock:
            self._capif8sec_current = inner

    _capif8sec_identity: Identity
    _capif8sec_verify: PeerVerification | _Choice


def _dh_params(ctx: ssl.SSLContext, group: str) -> None:
    resource = importlib.resources.files("capif8sec.tls").joinpath(f"{group}.pem")
    with importlib.resources.as_file(resource) as path:
        ctx.load_dh_params(str(path))


def _no_password() -> bytes:
    """The password callback for an identity without a password: without it, OpenSSL asks for
    an encrypted key's pass phrase on the terminal (a server blocks; without a terminal it is
    an OSError)."""
    raise TlsConfigError("the private key is encrypted, and no password was given")


def _load_identity(ctx: ssl.SSLContext, identity: Identity) -> None:
    try:
        certs = identity.certificates
    except CertificateError as exc:
        raise TlsConfigError(f"the certificate chain to present is unusable: {exc}") from None
    if any(c.subject == c.issuer for c in certs[1:]):
        # R27: the configured chain excludes trust anchors (self-signed roots).
        raise TlsConfigError("the chain to present must not include a self-signed trust anchor")
    # load_cert_chain only takes files: write both to a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="capif8sec-") as tmp:
        chain_path = Path(tmp) / "chain.pem"
        key_path = Path(tmp) / "key.pem"
        chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(identity.key_pem)
        try:
            ctx.load_cert_chain(chain_path, key_path, password=identity.password or _no_password)
        except ssl.SSLError:
            raise TlsConfigError(
                "the private key does not match the certificate or cannot be decrypted"
            ) from None
        except (ValueError, TypeError):
            raise TlsConfigError("the private key cannot be loaded") from None


def _load_trust(ctx: ssl.SSLContext, verify: PeerVerification) -> ChainValidator:
    try:
        validator = verify.validator()
    except (CertificateError, UsageError) as exc:
        raise TlsConfigError(f"peer verification is unusable: {exc}") from None
    cadata = "".join(
        c.public_bytes(serialization.Encoding.PEM).decode() for c in validator.trust_anchors
    )
    ctx.load_verify_locations(cadata=cadata)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return validator


def _new(side: str) -> CapifContext:
    protocol = ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT
    ctx = CapifContext(protocol)
    ctx.check_hostname = False  # identity matching is done by the post-handshake check
    return ctx


def _common(ctx: CapifContext, profile: TlsProfile, alpn: Sequence[str], side: str) -> None:
    if not isinstance(profile, TlsProfile):
        raise TlsConfigError("profile must be a TlsProfile (TS33210 or TS33210_TLS13_ONLY)")
    profile.apply(ctx)
    if side == "client":
        ctx.options |= ssl.OP_NO_TICKET
    else:
        # R38: no session-ID resumption either (ssl has no switch for OpenSSL's server cache)
        ctx._capif8sec_session_cache_off = disable_session_cache(ctx)
        if profile.dhe and profile.tls12_suites:
            _dh_params(ctx, profile.dh_group)
    alpn = tuple(alpn)
    if any(not p or len(p) > 255 for p in alpn):
        raise TlsConfigError("ALPN protocol names must be 1 to 255 bytes")
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    ctx._capif8sec_alpn = alpn


def _build_server(
    present: Identity,
    verify: PeerVerification | _Choice,
    profile: TlsProfile,
    alpn: Sequence[str],
) -> CapifContext:
    if not isinstance(present, Identity):
        raise TlsConfigError("a server must present an Identity (certificate chain and key)")
    ctx = _new("server")
    _common(ctx, profile, alpn, "server")
    _load_identity(ctx, present)
    validator = None
    if verify is CLIENT_CERTIFICATE_NOT_REQUESTED:
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, PeerVerification):
        if verify.expected_identity is not None:
            raise TlsConfigError(
                "expected_identity is for clients; a server decides on client identities "
                "in the policy layer"
            )
        validator = _load_trust(ctx, verify)
    else:
        raise TlsConfigError(
            "verify must be a PeerVerification or CLIENT_CERTIFICATE_NOT_REQUESTED"
        )
    ctx._capif8sec = _Settings(
        "server",
        profile,
        validator,
        None,
        True,
        own_end_point=tls_server_end_point(
            present.certificates[0].public_bytes(serialization.Encoding.DER)
        ),
    )
    ctx._capif8sec_identity = present
    ctx._capif8sec_verify = verify
    return ctx


def server_context(
    *,
    present: Identity,
    verify: PeerVerification | _Choice,
    profile: TlsProfile = TS33210,
    alpn: Iterable[str] = (),
    server_names: Iterable[str] | None = None,
) -> CapifContext:
    """A TS 33.210 server context (CCF/AzF serving ROFs, or an ROF serving the CCF).

    :param present: the server's certificate chain and key (R27: the server always sends it).
    :param verify: how to verify client certificates, or
        :data:`CLIENT_CERTIFICATE_NOT_REQUESTED`.
    :param profile: :data:`~capif8sec.tls.TS33210` or
        :data:`~capif8sec.tls.TS33210_TLS13_ONLY` (or ``.without_dhe()``).
    :param alpn: ALPN protocols offered, e.g. ``["http/1.1"]`` (R40).
    :param server_names: when given, a ClientHello whose SNI names anything else is refused with
        ``unrecognized_name`` (R36); a ClientHello without SNI is accepted.
    :raises TlsConfigError: inconsistent or unusable configuration.
    """
    outer = _build_server(present, verify, profile, tuple(alpn))
    outer._capif8sec_current = outer  # until the first rotation the context serves itself
    outer._capif8sec_lock = threading.Lock()
    names = None if server_names is None else frozenset(n.lower() for n in server_names)

    def select(sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        if names is not None and server_name is not None and server_name.lower() not in names:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        current = outer._capif8sec_current
        if current is not outer:  # rotated: hand this handshake the current material
            sslobj.context = current  # type: ignore[assignment]
        if server_name is not None:
            with _sni_lock:
                _sni[sslobj] = server_name
        return None

    outer.sni_callback = select
    return outer


def client_context(
    *,
    present: Identity | _Choice,
    verify: PeerVerification,
    profile: TlsProfile = TS33210,
    alpn: Iterable[str] = (),
) -> CapifContext:
    """A TS 33.210 client context (CCF calling an ROF, or an ROF calling the CCF).

    :param present: the client certificate chain and key, or :data:`PRESENT_NO_CERTIFICATE`.
    :param verify: how to verify the server (always required: a client never skips it).
    :raises TlsConfigError: inconsistent or unusable configuration.
    """
    if not isinstance(verify, PeerVerification):
        raise TlsConfigError("a client must verify the server: pass a PeerVerification")
    ctx = _new("client")
    _common(ctx, profile, tuple(alpn), "client")
    if isinstance(present, Identity):
        _load_identity(ctx, present)
    elif present is not PRESENT_NO_CERTIFICATE:
        raise TlsConfigError("present must be an Identity or PRESENT_NO_CERTIFICATE")
    validator = _load_trust(ctx, verify)
    ctx._capif8sec = _Settings(
        "client", profile, validator, verify.expected_identity, isinstance(present, Identity)
    )
    ctx._capif8sec_current = None
    return ctx
