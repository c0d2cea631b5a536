"""CRL checks (TS 33.310 6.1a, 6.3.1; R25): is a CRL usable, and is a certificate on it?

Pure functions over ``cryptography`` objects; fetching CRLs is the caller's business (see
:class:`~capif8sec.certs.chain.ChainValidator`'s ``crl_fetcher``).
"""

from __future__ import annotations

import datetime as dt

from attrs import frozen
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from capif8sec._der import DerError, iter_tlvs, read_tlv
from capif8sec.certs.facts import _SIGNATURE_OIDS
from capif8sec.certs.names import cert_names, crl_issuer
from capif8sec.errors import CertificateRevoked, CrlError

__all__ = ["CheckedCrl", "check_crl", "check_crl_signature", "check_revocation"]

_INVALIDITY_DATE = x509.ObjectIdentifier("2.5.29.24")
_ALLOWED_HASHES = {"sha256", "sha384", "sha512"}
_KNOWN_CRL_EXTENSIONS = {
    ExtensionOID.CRL_NUMBER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
}


@frozen
class CheckedCrl:
    """A CRL whose signature, issuer, version, hash and extensions passed (time checked apart)."""

    crl: x509.CertificateRevocationList
    issuer: x509.Certificate
    only_user_certs: bool
    only_ca_certs: bool
    number: int | None
    #: The names of the issuingDistributionPoint's distributionPoint (``None``: the CRL is not
    #: scoped to one distribution point; empty: a relative name, which matches nothing here).
    distribution_point: tuple[x509.GeneralName, ...] | None = None

    @property
    def this_update(self) -> dt.datetime:
        """thisUpdate (UTC)."""
        return self.crl.last_update_utc


def _crl_name(crl: x509.CertificateRevocationList) -> str:
    try:
        return crl_issuer(crl).rfc4514()
    except Exception:
        return "(undecodable issuer)"


def check_crl_signature(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate
) -> CheckedCrl:
    """Check everything about a CRL that does not depend on the time.

    Version 2, a SHA-256/384 (or SHA-512) RSA/ECDSA signature that verifies under ``issuer``'s
    key, the issuer name, cRLSign on the issuer, no unknown critical extension, no delta or
    indirect CRL.

    :raises CrlError: the CRL cannot be used for ``issuer``.
    """
    name = _crl_name(crl)
    try:
        issuer_name = cert_names(issuer).subject
        if crl_issuer(crl) != issuer_name:
            raise CrlError(f"CRL issuer {name} is not {issuer_name.rfc4514()}")
        _check_version(crl.tbs_certlist_bytes)
        kind, hash_name = _SIGNATURE_OIDS.get(
            crl.signature_algorithm_oid.dotted_string, ("unknown", None)
        )
        if kind == "rsa-pss":
            algorithm = crl.signature_hash_algorithm
            hash_name = algorithm.name if algorithm is not None else None
        if kind not in ("rsa-pkcs1v15", "rsa-pss", "ecdsa") or hash_name not in _ALLOWED_HASHES:
            raise CrlError(
                f"CRL of {name} is signed with {kind}/{hash_name or 'unknown'}; "
                "SHA-256 or SHA-384 with RSA or ECDSA required"
            )
        try:
            ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
            if not ku.crl_sign:
                raise CrlError(f"the issuer of the CRL of {name} lacks the cRLSign key usage")
        except x509.ExtensionNotFound:
            pass
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise CrlError(f"the signature of the CRL of {name} does not verify")
        only_user = only_ca = False
        number = None
        scope: tuple[x509.GeneralName, ...] | None = None
        for ext in crl.extensions:
            value = ext.value
            if isinstance(value, x509.IssuingDistributionPoint):
                if (
                    value.indirect_crl
                    or value.only_some_reasons
                    or value.only_contains_attribute_certs
                ):
                    raise CrlError(
                        f"CRL of {name} is indirect or partitioned by reason; not supported"
                    )
                only_user = value.only_contains_user_certs
                only_ca = value.only_contains_ca_certs
                if value.full_name is not None:
                    scope = tuple(value.full_name)
                elif value.relative_name is not None:
                    scope = ()
            elif isinstance(value, x509.CRLNumber):
                number = value.crl_number
            elif isinstance(value, x509.DeltaCRLIndicator):
                raise CrlError(f"CRL of {name} is a delta CRL; a complete CRL is needed")
            elif ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
                raise CrlError(f"CRL of {name} has an unknown critical extension {ext.oid}")
    except CrlError:
        raise
    except Exception as exc:  # undecodable extensions, unsupported key types, ...
        raise CrlError(f"CRL of {name} cannot be used: {str(exc)[:200]}") from exc
    return CheckedCrl(crl, issuer, only_user, only_ca, number, scope)


_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def shift(instant: dt.datetime, by: dt.timedelta) -> dt.datetime:
    """``instant + by``, saturated at the ends of the datetime range: certificates and CRLs may
    carry 9999-12-31 or 0001-01-01, and a clock skew must not turn that into an error."""
    try:
        return instant + by
    except OverflowError:
        return _LATEST if by > dt.timedelta(0) else _EARLIEST


def check_crl(
    checked: CheckedCrl, at: dt.datetime, skew: dt.timedelta = dt.timedelta(0)
) -> CheckedCrl:
    """Check that a CRL is current at ``at``: thisUpdate reached, nextUpdate present and ahead.

    :raises CrlError: the CRL is not yet valid, stale, or has no nextUpdate.
    """
    crl = checked.crl
    this_update = crl.last_update_utc
    if this_update > shift(at, skew):
        raise CrlError(f"CRL of {_crl_name(crl)} is not yet valid (thisUpdate {this_update})")
    next_update = crl.next_update_utc
    if next_update is None:
        raise CrlError(f"CRL of {_crl_name(crl)} has no nextUpdate")
    if next_update < shift(at, -skew):
        raise CrlError(f"CRL of {_crl_name(crl)} is stale (nextUpdate {next_update})")
    return checked


def covers(checked: CheckedCrl, cert_is_ca: bool, cert: x509.Certificate | None = None) -> bool:
    """Whether the CRL's scope (issuingDistributionPoint) includes this certificate.

    The kind (onlyContainsUserCerts / onlyContainsCACerts) and, when the issuingDistributionPoint
    names a distribution point, one of the cRLDistributionPoints names of ``cert`` must match
    it (RFC 5280 6.3.3 b.2.i); such a CRL covers nothing when ``cert`` is not given.
    """
    if (checked.only_user_certs and cert_is_ca) or (checked.only_ca_certs and not cert_is_ca):
        return False
    if checked.distribution_point is None:
        return True
    if cert is None:
        return False
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except Exception:  # absent or undecodable: the scoped CRL cannot be shown to apply
        return False
    names = {name for point in points for name in point.full_name or ()}
    return any(name in names for name in checked.distribution_point)


def check_revocation(checked: CheckedCrl, cert: x509.Certificate) -> None:
    """Raise :class:`CertificateRevoked` if ``cert`` is on the (already checked) CRL.

    :raises CrlError: the entry carries an unknown critical extension (e.g. certificateIssuer).
    """
    entry = checked.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return
    reason: str | None = None
    try:
        for ext in entry.extensions:
            if isinstance(ext.value, x509.CRLReason):
                reason = ext.value.reason.name
            elif ext.critical and ext.oid != _INVALIDITY_DATE:
                raise CrlError(f"CRL entry has an unsupported critical extension {ext.oid}")
    except CrlError:
        raise
    except Exception as exc:
        raise CrlError(f"CRL entry cannot be decoded: {str(exc)[:200]}") from exc
    subject = cert_names(cert).subject.rfc4514()
    raise CertificateRevoked(
        f"certificate {subject} (serial {cert.serial_number:#x}) is revoked"
        + (f": {reason}" if reason else ""),
        serial_number=cert.serial_number,
        reason=reason,
        revocation_date=entry.revocation_date_utc,
    )


def _check_version(tbs: bytes) -> None:
    try:
        outer, _ = read_tlv(tbs)
        first = next(iter_tlvs(outer.content))
    except (DerError, StopIteration):
        raise CrlError("CRL TBS cannot be decoded") from None
    if first.tag != 0x02 or first.content != b"\x01":
        raise CrlError("CRL is not version 2")
