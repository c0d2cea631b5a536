"""Chain validation: pyca's web-PKI verifier, then the TS 33.310 profiles, the 6.1.3a issuing
rule, validity and CRL revocation (R16, R24, R25, R26).

The validator does no network I/O: CRLs are handed in, or fetched through an injected callable.
It does no name matching either (the client verifier of pyca returns the SAN list): the peer's
identities are returned for the policy layer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence

from attrs import frozen
from cryptography import x509
from cryptography.x509 import ExtendedKeyUsage
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from capif8sec.certs import crl as crlmod
from capif8sec.certs.crl import shift as _shift
from capif8sec.certs.identities import CertificateIdentities, identities_of
from capif8sec.certs.lint import der_input, lint_certificate
from capif8sec.certs.names import cert_names, crl_issuer
from capif8sec.certs.parse import (
    MAX_CERTIFICATE_BYTES,
    CertificateInput,
    CrlInput,
    load_certificate,
    load_certificates,
    load_crl,
)
from capif8sec.certs.profiles import (
    INTERCONNECTION_CA,
    TLS_CA,
    Profile,
    check_deviations,
    get_profile,
)
from capif8sec.certs.report import Report
from capif8sec.certs.rules import crl_urls
from capif8sec.errors import (
    CertificateError,
    CertificateExpired,
    ChainValidationError,
    CrlError,
    ProfileViolation,
    RevocationUnknown,
    UsageError,
)

__all__ = ["ChainValidator", "CrlFetcher", "VerifiedChain"]

#: Fetches the CRL published at a cRLDistributionPoints URI.  Injected by the deployment; the
#: library itself never opens a connection.
CrlFetcher = Callable[[str], "bytes | x509.CertificateRevocationList"]

#: At most this many distinct untrusted intermediates are handed to path building.
DEFAULT_MAX_INTERMEDIATES = 8
#: At most this many intermediates in a path (EE -> TLS CA -> interconnection CA -> root needs 2).
DEFAULT_MAX_CHAIN_DEPTH = 4


@frozen
class VerifiedChain:
    """A chain that passed path validation, every profile, validity and revocation.

    ``chain`` runs from the end entity to the trust anchor.  ``revocation`` says, per element
    except the anchor, how its revocation status was established.  Never cache this beyond the
    lifetime of the TLS connection it was computed for (R26).
    """

    chain: tuple[x509.Certificate, ...]
    profile: str
    role: str
    reports: tuple[Report, ...]
    identities: CertificateIdentities
    revocation: tuple[str, ...]
    deviations: tuple[str, ...]
    validated_at: dt.datetime

    @property
    def leaf(self) -> x509.Certificate:
        """The end-entity certificate."""
        return self.chain[0]


class ChainValidator:
    """Validates peer chains against configured trust anchors, profiles and CRLs.

    Build one per trust configuration and reuse it: trust anchors and CRL signatures are
    checked once, lint results of CA certificates are memoised (they depend on the bytes only),
    and :meth:`verify` is safe to call from many threads.

    :param trust_anchors: the root (or TLS CA) certificates to trust; PEM bundles are fine.
    :param profile: the end-entity profile, ``tls-entity`` (default) or ``sba-nf``.
    :param crls: CRLs of the issuers in the chain.
    :param crl_fetcher: called with a cRLDistributionPoints URI when no usable CRL was handed in.
    :param deviations: named deviations (see :data:`~capif8sec.certs.profiles.DEVIATIONS`).
    :param strict: report warnings as errors.
    :param clock_skew: tolerance for validity and CRL times (default 0, R24).
    :param cache_size: how many parsed certificates, lint reports, paths proven through an
        intermediate and handshake-chain plans to keep, keyed by the exact certificate bytes
        (0: none).  Only time-independent facts are kept; validity and revocation are
        evaluated on every call (R26).
    """

    def __init__(
        self,
        trust_anchors: CertificateInput | Iterable[CertificateInput],
        *,
        profile: str | Profile = "tls-entity",
        crls: Iterable[CrlInput] = (),
        crl_fetcher: CrlFetcher | None = None,
        deviations: Iterable[str] = (),
        strict: bool = False,
        clock_skew: dt.timedelta = dt.timedelta(0),
        max_intermediates: int = DEFAULT_MAX_INTERMEDIATES,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        cache_size: int = 4096,
    ) -> None:
        self._profile = get_profile(profile)
        if self._profile.is_ca:
            raise UsageError(f"profile {self._profile.name} is not an end-entity profile")
        self._anchors = _load_many(trust_anchors)
        if not self._anchors:
            raise UsageError("at least one trust anchor is required")
        self._store = Store(self._anchors)
        self._ee_policy, self._ca_policy = _extension_policies(self._profile)
        self._deviations = check_deviations(deviations)
        self._strict = strict
        if clock_skew < dt.timedelta(0):
            raise UsageError("clock_skew must not be negative")
        self._skew = clock_skew
        if not 0 < max_chain_depth <= 16 or not 0 <= max_intermediates <= 64:
            raise UsageError("max_chain_depth must be 1..16 and max_intermediates 0..64")
        self._max_intermediates = max_intermediates
        if cache_size < 0:
            raise UsageError("cache_size must not be negative")
        self._cache_size = cache_size
        self._max_depth = max_chain_depth
        self._fetcher = crl_fetcher
        self._lock = threading.Lock()
        self._crls: dict[bytes, list[x509.CertificateRevocationList]] = {}
        # keyed by (CRL signature, issuer): CRL objects are not hashable; signatures are unique
        self._checked_crls: dict[tuple[bytes, x509.Certificate], crlmod.CheckedCrl] = {}
        self._reports: dict[tuple[x509.Certificate, str, str | None, x509.Certificate], Report] = {}
        # The same memos by object identity, tried first: hashing and comparing certificates
        # costs microseconds each, and the CA objects recur (interned intermediates, anchors).
        # Entries hold the objects, so their ids cannot be reused while the entries exist.
        self._reports_by_id: dict[
            tuple[int, str, str | None, int], tuple[x509.Certificate, x509.Certificate, Report]
        ] = {}
        self._checked_crls_by_id: dict[
            tuple[int, int],
            tuple[x509.CertificateRevocationList, x509.Certificate, crlmod.CheckedCrl],
        ] = {}
        self._parsed_intermediates: dict[bytes, tuple[x509.Certificate, ...]] = {}
        self._identities_by_id: dict[int, tuple[x509.Certificate, CertificateIdentities]] = {}
        self._linked: dict[tuple[int, ...], tuple[x509.Certificate, ...]] = {}
        # verify's paths proven by pyca, by id(intermediate): see _prove
        self._proven: dict[int, tuple[x509.Certificate, tuple[x509.Certificate, ...], Store]] = {}
        # check_verified_chain's plans, by (role, chain DER...): see _Plan
        self._plans: dict[tuple[object, ...], _Plan] = {}
        # id(CRL) -> (the CRL, its serials); None: the entries could not be listed
        self._revoked_serials: dict[
            int, tuple[x509.CertificateRevocationList, frozenset[int] | None]
        ] = {}
        self.replace_crls(crls)

    # ------------------------------------------------------------------ configuration

    @property
    def trust_anchors(self) -> tuple[x509.Certificate, ...]:
        """The configured trust anchors."""
        return tuple(self._anchors)

    @property
    def deviations(self) -> frozenset[str]:
        """The deviations in force."""
        return self._deviations

    def replace_crls(self, crls: Iterable[CrlInput]) -> None:
        """Swap the whole CRL set (e.g. after a periodic refresh); takes effect at once."""
        by_issuer: dict[bytes, list[x509.CertificateRevocationList]] = {}
        for item in crls:
            parsed = load_crl(item)
            by_issuer.setdefault(crl_issuer(parsed).der, []).append(parsed)
        with self._lock:
            self._crls = by_issuer
            self._checked_crls = {}
            self._checked_crls_by_id = {}
            self._revoked_serials = {}
            self._plans = {}  # made with the old set: they could never be used again

    # ------------------------------------------------------------------ validation

    def verify(
        self,
        leaf: CertificateInput,
        intermediates: Iterable[CertificateInput] = (),
        *,
        role: str,
        at: dt.datetime | None = None,
    ) -> VerifiedChain:
        """Validate ``leaf`` (with untrusted ``intermediates``) for ``role`` at time ``at``.

        :param role: ``client`` or ``server`` (``both`` for ``sba-nf``): the role the peer
            plays in TLS; its certificate is checked as a certificate for that role.
        :raises CertificateParseError: an element does not parse.
        :raises CertificateExpired: an element is expired or not yet valid.
        :raises ChainValidationError: no path to a trust anchor (``rule`` says which check).
        :raises ProfileViolation: an element breaks its TS 33.310 profile.
        :raises CertificateRevoked: an element is revoked.
        :raises RevocationUnknown: revocation status could not be established.
        """
        role = self._profile.check_role(role) or role
        when = _utc(at)
        leaf_cert = self._certificate(leaf)
        pool: list[x509.Certificate] = []
        interned = True  # every intermediate came through the bytes-keyed parse memo
        for item in intermediates:
            if type(item) is not bytes or len(item) > MAX_CERTIFICATE_BYTES:
                interned = False
            for cert in self._intermediates(item):
                if cert not in pool and cert != leaf_cert:
                    pool.append(cert)
                if len(pool) > self._max_intermediates:
                    raise ChainValidationError(
                        f"more than {self._max_intermediates} intermediate certificates offered",
                        rule="chain.path",
                    )
        self._check_time(leaf_cert, when)
        chain = self._proven_path(leaf_cert, pool, when)
        if chain is None:
            chain = self._build_path(leaf_cert, pool, when)
            if interned:  # an object parsed afresh would never be looked up again
                self._prove(pool, chain)
        return self._finish(chain, role, when, leaf_der=der_input(leaf))

    def check_verified_chain(
        self,
        chain: Sequence[CertificateInput],
        *,
        role: str,
        at: dt.datetime | None = None,
    ) -> VerifiedChain:
        """Profiles, validity, the 6.1.3a issuing rule and revocation for an already built path.

        For a chain that OpenSSL path-validated during a TLS handshake against this validator's
        trust anchors (``get_verified_chain()``, leaf first, anchor last): it re-checks that the
        chain links up by name to one of this validator's anchors and that every element is
        within its validity, then applies everything OpenSSL does not know about -- the
        TS 33.310 profiles, R16 and the CRLs.  Signatures are not verified again.

        :raises ChainValidationError: the chain does not end at a configured anchor or does
            not link up; or any of the errors of :meth:`verify`.
        """
        role = self._profile.check_role(role) or role
        when = _utc(at)
        if not chain:
            raise ChainValidationError("the chain is empty", rule="chain.path")
        key = (role, *chain) if self._cache_size and all(type(c) is bytes for c in chain) else None
        if key is not None:
            plan = self._plans.get(key)
            if plan is not None and plan.crls is self._crls:
                done = plan.run(when)
                if done is not None:
                    return done
        leaf_der = der_input(chain[0])
        # Elements arrive as the same bytes on every handshake of the same peer: they are
        # parsed once and reused, so their memoised names and lint reports apply (the validity
        # and revocation checks below run every time).
        certs = [self._certificate(chain[0])]
        for item in chain[1:]:
            certs.extend(self._intermediates(item))
        ids = tuple(map(id, certs))
        linked = self._linked.get(ids)
        if linked is None or any(a is not b for a, b in zip(linked, certs, strict=True)):
            if len(certs) < 2 or certs[-1] not in self._anchors:
                raise ChainValidationError(
                    "the chain does not end at a configured trust anchor", rule="chain.path"
                )
            for child, parent in itertools.pairwise(certs):
                if cert_names(child).issuer != cert_names(parent).subject:
                    raise ChainValidationError(
                        "the chain does not link up by name", rule="chain.path"
                    )
            if self._cache_size:  # these objects (held here) end at an anchor and link up
                with self._lock:
                    if len(self._linked) >= self._cache_size:
                        self._linked.clear()
                    self._linked[ids] = tuple(certs)
        for cert in certs:
            self._check_time(cert, when)
        crls = self._crls
        verified = self._finish(certs, role, when, leaf_der=leaf_der)
        if key is not None:
            plan = self._plan(verified, crls)
            if plan is not None:
                with self._lock:
                    if len(self._plans) >= self._cache_size:
                        self._plans.clear()
                    if crls is self._crls:  # not replaced meanwhile
                        self._plans[key] = plan
        return verified

    def _plan(
        self,
        verified: VerifiedChain,
        crls: dict[bytes, list[x509.CertificateRevocationList]],
    ) -> _Plan | None:
        """What :meth:`check_verified_chain` needs to check this chain again, or None.

        Only facts that depend on the bytes alone go in (the linked path, the lint reports, the
        identities, the covering CRLs whose signature verified, their serial sets); the
        validity of every element and the currency of the CRL and absence of the serial are
        checked on every call (R26).  Whatever the plan cannot decide exactly as the full path
        would -- a CRL fetcher to consult, a serial on a CRL, no current CRL -- it leaves to
        the full path.
        """
        chain = verified.chain
        skew = self._skew
        revocation: list[str | tuple[tuple[dt.datetime, dt.datetime, frozenset[int], str], ...]]
        revocation = []
        for i, cert in enumerate(chain[:-1]):
            issuer = chain[i + 1]
            status = verified.revocation[i]
            if "no-revocation-check" in self._deviations:
                revocation.append(status)
                continue
            if not status.startswith("good"):  # not checked: depends on the CRL set alone
                if crls.get(cert_names(issuer).subject.der) or (
                    self._fetcher is not None and _cdp_urls(cert)
                ):
                    return None
                revocation.append(status)
                continue
            candidates = []
            for crl in crls.get(cert_names(issuer).subject.der, ()):
                try:
                    checked = self._checked(crl, issuer)
                except CrlError:
                    return None  # possibly transient (see _checked): no plan
                if checked.crl.next_update_utc is None or not crlmod.covers(checked, i > 0, cert):
                    continue  # never usable for this element
                serials = self._serials(checked.crl)
                if serials is None:
                    return None
                number = f" #{checked.number}" if checked.number is not None else ""
                candidates.append(
                    (
                        _shift(checked.crl.last_update_utc, -skew),
                        _shift(checked.crl.next_update_utc, skew),
                        serials,
                        f"good (CRL{number} of {_subject(issuer)})",
                    )
                )
            if not candidates:
                return None  # the full path found its CRL by fetching it
            candidates.sort(key=lambda c: c[0], reverse=True)  # stable: like _usable_crl
            revocation.append(tuple(candidates))
        return _Plan(
            crls,
            _shift(max(c.not_valid_before_utc for c in chain), -skew),
            _shift(min(c.not_valid_after_utc for c in chain), skew),
            tuple(c.serial_number for c in chain[:-1]),
            tuple(revocation),
            # the time-independent fields only: no validation result is kept (R26)
            (chain, verified.profile, verified.role, verified.reports, verified.identities),
            verified.deviations,
        )

    def _finish(
        self,
        chain: list[x509.Certificate],
        role: str,
        when: dt.datetime,
        *,
        leaf_der: bytes | None = None,
    ) -> VerifiedChain:
        leaf_cert = chain[0]
        reports = self._check_profiles(chain, role, leaf_der)
        revocation = self._check_revocation(chain, when)
        applied = sorted(
            set(self._deviations) | {d for report in reports for d in report.deviations}
        )
        return VerifiedChain(
            chain=tuple(chain),
            profile=self._profile.name,
            role=role,
            reports=tuple(reports),
            identities=self._identities(leaf_cert),
            revocation=tuple(revocation),
            deviations=tuple(applied),
            validated_at=when,
        )

    def _check_time(self, cert: x509.Certificate, when: dt.datetime) -> None:
        if cert.not_valid_after_utc < _shift(when, -self._skew):
            raise CertificateExpired(
                f"certificate {_subject(cert)} expired at {cert.not_valid_after_utc.isoformat()}",
                rule="chain.validity",
            )
        if cert.not_valid_before_utc > _shift(when, self._skew):
            raise CertificateExpired(
                f"certificate {_subject(cert)} is not valid before "
                f"{cert.not_valid_before_utc.isoformat()}",
                rule="chain.validity",
            )

    def _build_path(
        self, leaf: x509.Certificate, pool: list[x509.Certificate], when: dt.datetime
    ) -> list[x509.Certificate]:
        verifier = self._verifier(self._store, _clamp(when, leaf, self._skew))
        try:
            verified = verifier.verify(leaf, pool)
        except VerificationError as exc:
            message = str(exc)
            if "not valid at validation time" in message:
                raise CertificateExpired(
                    f"a certificate of the chain is not valid at {when.isoformat()}: {message}",
                    rule="chain.validity",
                ) from None
            raise ChainValidationError(
                f"no valid path to a trust anchor: {message}", rule="chain.path"
            ) from None
        except Exception as exc:  # pyca turns the leaf's SAN into Python objects, which can fail
            raise ChainValidationError(
                f"a certificate of the chain cannot be decoded: {type(exc).__name__}: "
                f"{str(exc)[:200]}",
                rule="chain.parse",
            ) from None
        if len(verified.chain) < 2:
            # pyca accepts a leaf that is itself in the store; 6.1.3a wants it issued by a TLS CA
            raise ChainValidationError(
                "the end-entity certificate is itself a trust anchor; it must be issued by a "
                "TLS CA",
                rule="chain.path",
            )
        return list(verified.chain)

    def _verifier(self, store: Store, at: dt.datetime) -> ClientVerifier:
        """pyca's client verifier over ``store`` at ``at``, with this validator's policies."""
        return (
            PolicyBuilder()
            .store(store)
            .time(at)
            .max_chain_depth(self._max_depth)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )

    def _prove(self, pool: list[x509.Certificate], chain: list[x509.Certificate]) -> None:
        """Remember that pyca validated a path through the one intermediate offered.

        Kept: the path from that intermediate to the anchor, which pyca checked as a whole --
        the signatures along it and the CA rules for every CA in it, all functions of the
        bytes.  Not kept when a CA in it carries a constraint that reaches down to the leaf
        (name constraints, policy constraints or mappings, inhibitAnyPolicy): those must be
        applied to each new leaf by a full validation; nor when a trust anchor bears the
        intermediate's name.  See :meth:`_proven_path`.
        """
        if not self._cache_size or len(pool) != 1 or len(chain) < 3 or chain[1] != pool[0]:
            return
        # A trust anchor named like the intermediate is another candidate issuer of the next
        # leaf, tried by pyca before it: that leaf's path may not go through the intermediate.
        subject = cert_names(pool[0]).subject
        if any(cert_names(anchor).subject == subject for anchor in self._anchors):
            return
        tail = tuple(chain[1:])
        try:
            if any(ext.oid in _REACHING_DOWN for cert in tail for ext in cert.extensions):
                return
        except Exception:  # undecodable extensions: nothing to remember
            return
        with self._lock:
            if len(self._proven) >= self._cache_size:
                self._proven.clear()
            self._proven[id(pool[0])] = (pool[0], tail, Store([chain[1]]))

    def _proven_path(
        self, leaf: x509.Certificate, pool: list[x509.Certificate], when: dt.datetime
    ) -> list[x509.Certificate] | None:
        """The path through an intermediate :meth:`_prove` remembered, or None.

        pyca then validates only the leaf, with that intermediate as its anchor: the leaf's
        signature, its validity and the end-entity rules.  What pyca does not redo here is
        what it proved for the rest of the path before (signatures, CA rules); the validity
        of every element of the rest is checked here at the instant pyca would use.  Any
        doubt -- a refusal included -- returns None, and the caller runs the full validation,
        which gives the precise error; so this path never accepts what the full one refuses.
        """
        if len(pool) != 1 or leaf in self._anchors:  # a pinned leaf: the full path refuses it
            return None
        seen = self._proven.get(id(pool[0]))
        if seen is None or seen[0] is not pool[0]:
            return None
        _, tail, store = seen
        if cert_names(leaf).issuer != cert_names(tail[0]).subject:
            return None
        at = _clamp(when, leaf, self._skew)
        if any(not c.not_valid_before_utc <= at <= c.not_valid_after_utc for c in tail):
            return None
        try:
            verified = self._verifier(store, at).verify(leaf, [])
        except Exception:
            return None
        if len(verified.chain) != 2 or verified.chain[1] != tail[0]:
            return None
        return [leaf, *tail]

    def _check_profiles(
        self, chain: Sequence[x509.Certificate], role: str, leaf_der: bytes | None = None
    ) -> list[Report]:
        # The elements were loaded (and checked) by load_certificate(s) on their way in, and the
        # profile, role and deviations were validated once: lint_certificate skips redoing it.
        reports = [self._report(chain[0], self._profile, role, chain[1], leaf_der)]
        for i, cert in enumerate(chain[1:], start=1):
            issuer = chain[i + 1] if i + 1 < len(chain) else cert
            profile = TLS_CA if i == 1 else INTERCONNECTION_CA
            if i == 1 and "intermediate-below-tls-ca" in self._deviations:
                profile = TLS_CA if _path_len(cert) == 0 else INTERCONNECTION_CA
            reports.append(self._report(cert, profile, None, issuer))
        bad = [r for r in reports if r.findings and not r.compliant]
        if bad:
            tls_ca = reports[1] if len(reports) > 1 else None
            rule = (
                "chain.issued_by_tls_ca"
                if tls_ca is not None
                and not tls_ca.compliant
                and tls_ca.profile == "tls-ca"
                and tls_ca.rule_ids() & {"tls_ca.path_length", "ca.basic_constraints"}
                else "chain.element_profile"
            )
            first = bad[0]
            raise ProfileViolation(
                f"{first.subject} does not conform to the {first.profile} profile ({rule}): "
                + "; ".join(f"{f.rule}: {f.message}" for f in first.errors),
                reports=bad,
                rule=rule,
            )
        return reports

    def _report(
        self,
        cert: x509.Certificate,
        profile: Profile,
        role: str | None,
        issuer: x509.Certificate,
        der: bytes | None = None,
    ) -> Report:
        """The lint report of ``cert`` as ``profile``/``role`` under ``issuer``, memoised.

        A lint report is a pure function of the certificate's bytes, its issuer's, the profile,
        role and deviations (which are fixed per validator): it holds nothing that changes with
        time.  Validity and revocation -- the time-dependent validation results that R26 forbids
        keeping beyond a connection -- are recomputed on every call.
        """
        ids = (id(cert), profile.name, role, id(issuer))
        seen = self._reports_by_id.get(ids)
        if seen is not None and seen[0] is cert and seen[1] is issuer:
            return seen[2]
        # By value (hashing a certificate hashes its bytes, microseconds): for objects handed
        # in as such.  A certificate read from DER bytes here is one object per distinct bytes
        # (see _intermediates), so the memo by identity above is the one that can hit.
        key = (cert, profile.name, role, issuer) if der is None else None
        report = self._reports.get(key) if key is not None else None
        if report is None:
            report = lint_certificate(
                cert, profile, role, issuer, self._deviations, self._strict, der=der
            )
            if key is not None:
                with self._lock:
                    if len(self._reports) > self._cache_size:
                        self._reports.clear()
                    self._reports[key] = report
        with self._lock:
            if len(self._reports_by_id) > self._cache_size:
                self._reports_by_id.clear()
            self._reports_by_id[ids] = (cert, issuer, report)
        return report

    def _check_revocation(self, chain: Sequence[x509.Certificate], when: dt.datetime) -> list[str]:
        if "no-revocation-check" in self._deviations:
            return ["not checked (deviation no-revocation-check)"] * (len(chain) - 1)
        statuses = []
        for i, cert in enumerate(chain[:-1]):
            issuer = chain[i + 1]
            is_ca = i > 0
            checked, problems = self._usable_crl(cert, issuer, is_ca, when)
            if checked is None:
                urls = _cdp_urls(cert)
                # "not checked" only when no CRL of the issuer was at hand at all: an unusable
                # one (stale, forged, ...) must not let e.g. a revoked TLS CA pass (fail closed)
                if not urls and is_ca and not problems:
                    statuses.append("not checked (CA without a CRL distribution point)")
                    continue
                if not urls and not problems and "no-crl-distribution-point" in self._deviations:
                    statuses.append("not checked (deviation no-crl-distribution-point)")
                    continue
                detail = "; ".join(problems) if problems else "no CRL of its issuer is available"
                raise RevocationUnknown(
                    f"revocation status of {_subject(cert)} unknown: {detail}",
                    rule="chain.crl" if problems else "chain.revocation",
                )
            serials = self._serials(checked.crl)
            if serials is None or cert.serial_number in serials:
                crlmod.check_revocation(checked, cert)
            number = f" #{checked.number}" if checked.number is not None else ""
            statuses.append(f"good (CRL{number} of {_subject(issuer)})")
        return statuses

    def _usable_crl(
        self, cert: x509.Certificate, issuer: x509.Certificate, is_ca: bool, when: dt.datetime
    ) -> tuple[crlmod.CheckedCrl | None, list[str]]:
        problems: list[str] = []
        best: crlmod.CheckedCrl | None = None
        for candidate in self._crls.get(cert_names(issuer).subject.der, ()):
            try:
                checked = crlmod.check_crl(self._checked(candidate, issuer), when, self._skew)
            except CrlError as exc:
                problems.append(str(exc))
                continue
            if crlmod.covers(checked, is_ca, cert) and (
                best is None or checked.this_update > best.this_update
            ):
                best = checked
        if best is None and self._fetcher is not None:
            for url in _cdp_urls(cert):
                try:
                    fetched = load_crl(self._fetcher(url))
                    checked = crlmod.check_crl(
                        crlmod.check_crl_signature(fetched, issuer), when, self._skew
                    )
                except CertificateError as exc:
                    problems.append(f"{url}: {exc}")
                    continue
                except Exception as exc:  # the injected fetcher failed
                    problems.append(f"fetching {url} failed: {type(exc).__name__}")
                    continue
                if crlmod.covers(checked, is_ca, cert):
                    return checked, problems
        return best, problems

    def _identities(self, cert: x509.Certificate) -> CertificateIdentities:
        """``identities_of(cert)``, memoised per certificate object (a function of its bytes)."""
        seen = self._identities_by_id.get(id(cert))
        if seen is not None and seen[0] is cert:
            return seen[1]
        identities = identities_of(cert)
        if self._cache_size:
            with self._lock:
                if len(self._identities_by_id) >= self._cache_size:
                    self._identities_by_id.clear()
                self._identities_by_id[id(cert)] = (cert, identities)
        return identities

    def _certificate(self, item: CertificateInput) -> x509.Certificate:
        """Exactly one certificate, parsed once per distinct DER input (see _intermediates)."""
        if isinstance(item, bytes) and self._cache_size and der_input(item) is not None:
            certs = self._intermediates(item)
            if len(certs) == 1:
                return certs[0]
        return load_certificate(item)

    def _intermediates(self, item: CertificateInput) -> list[x509.Certificate]:
        """``load_certificates(item)``, remembered by the input bytes (bounded).

        Peers send the same certificates in every handshake; parsing them again would redo work
        (names, extensions, the public key) that depends on the bytes only.  A certificate
        object is immutable, so sharing it between calls shares no validation result.
        """
        if not isinstance(item, bytes) or len(item) > MAX_CERTIFICATE_BYTES or not self._cache_size:
            return load_certificates(item)
        certs = self._parsed_intermediates.get(item)
        if certs is None:
            certs = tuple(load_certificates(item))
            with self._lock:
                if len(self._parsed_intermediates) >= self._cache_size:
                    self._parsed_intermediates.clear()
                self._parsed_intermediates[item] = certs
        return list(certs)

    def _serials(self, crl: x509.CertificateRevocationList) -> frozenset[int] | None:
        """The serial numbers a CRL lists, listed once per CRL; a certificate whose serial is
        not among them is not on the CRL, without the linear search of
        ``get_revoked_certificate_by_serial_number``."""
        known = self._revoked_serials.get(id(crl))
        if known is not None and known[0] is crl:
            return known[1]
        serials: frozenset[int] | None
        try:
            serials = frozenset(entry.serial_number for entry in crl)
        except Exception:  # an undecodable entry: check_revocation reports it per certificate
            serials = None
        with self._lock:
            if len(self._revoked_serials) >= 64:  # fetched CRLs are new objects every time
                self._revoked_serials.clear()
            self._revoked_serials[id(crl)] = (crl, serials)
        return serials

    def _checked(
        self, crl: x509.CertificateRevocationList, issuer: x509.Certificate
    ) -> crlmod.CheckedCrl:
        seen = self._checked_crls_by_id.get((id(crl), id(issuer)))
        if seen is not None and seen[0] is crl and seen[1] is issuer:
            return seen[2]
        key = (crl.signature, issuer)
        result = self._checked_crls.get(key)
        if result is None:
            # Only a CRL that passed is remembered: a failure can be transient.  pyca's
            # is_signature_valid answers False when OpenSSL cannot initialise (measured: the
            # first check in a process out of file descriptors), and a remembered failure
            # would refuse every ROF until the CRLs are replaced.
            result = crlmod.check_crl_signature(crl, issuer)
            with self._lock:
                self._checked_crls[key] = result
        with self._lock:
            if len(self._checked_crls_by_id) > 4096:
                self._checked_crls_by_id.clear()
            self._checked_crls_by_id[(id(crl), id(issuer))] = (crl, issuer, result)
        return result


class _Plan:
    """A chain :meth:`ChainValidator.check_verified_chain` passed before, ready to check again.

    :meth:`run` redoes the time-dependent part of the full path -- every element within its
    validity, and for every element a current CRL of its issuer that does not list it -- and
    returns None wherever the full path might answer otherwise (an element outside its
    validity, no current covering CRL, the serial on a CRL): the caller then takes the full
    path, which raises the precise error.  A CRL's currency is judged as
    :func:`~capif8sec.certs.crl.check_crl` does, and among the current covering CRLs the
    newest decides, as in :meth:`ChainValidator._usable_crl`.
    """

    __slots__ = ("crls", "deviations", "facts", "not_after", "not_before", "revocation", "serials")

    def __init__(
        self,
        crls: dict[bytes, list[x509.CertificateRevocationList]],
        not_before: dt.datetime,
        not_after: dt.datetime,
        serials: tuple[int, ...],
        revocation: tuple[
            str | tuple[tuple[dt.datetime, dt.datetime, frozenset[int], str], ...], ...
        ],
        facts: tuple[
            tuple[x509.Certificate, ...], str, str, tuple[Report, ...], CertificateIdentities
        ],
        deviations: tuple[str, ...],
    ) -> None:
        self.crls = crls  # the CRL set the plan was made with (replace_crls swaps the dict)
        self.not_before = not_before
        self.not_after = not_after
        self.serials = serials
        self.revocation = revocation
        self.facts = facts
        self.deviations = deviations

    def run(self, when: dt.datetime) -> VerifiedChain | None:
        if not self.not_before <= when <= self.not_after:
            return None
        statuses: list[str] = []
        for serial, element in zip(self.serials, self.revocation, strict=True):
            if isinstance(element, str):
                statuses.append(element)
                continue
            for this_update, next_update, revoked, status in element:
                if this_update <= when <= next_update:
                    if serial in revoked:
                        return None
                    statuses.append(status)
                    break
            else:
                return None
        chain, profile, role, reports, identities = self.facts
        return VerifiedChain(
            chain, profile, role, reports, identities, tuple(statuses), self.deviations, when
        )


#: CA extensions whose constraints apply to the certificates below: a path through a CA that
#: carries one is never shortened (see ChainValidator._prove).
_REACHING_DOWN = frozenset(
    {
        x509.oid.ExtensionOID.NAME_CONSTRAINTS,
        x509.oid.ExtensionOID.POLICY_CONSTRAINTS,
        x509.oid.ExtensionOID.INHIBIT_ANY_POLICY,
        x509.oid.ExtensionOID.POLICY_MAPPINGS,
    }
)


def _extension_policies(profile: Profile) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """pyca's extension policies for path building: (end entity, CA)."""
    # EKU is judged by the profile lint (ee.eku_role, common.extension_criticality), which
    # always runs on the leaf and names the exact rule; pyca's own EKU check is replaced so
    # that a server certificate can be validated without name matching.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
    if profile.name == "sba-nf":  # 6.1.3c: SAN mandatory *and critical*
        ee_policy = ee_policy.require_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )
    return ee_policy, ExtensionPolicy.webpki_defaults_ca()


def _load_many(data: CertificateInput | Iterable[CertificateInput]) -> list[x509.Certificate]:
    if isinstance(data, (bytes, bytearray, memoryview, str, x509.Certificate)):
        return load_certificates(data)
    out: list[x509.Certificate] = []
    for item in data:
        out.extend(load_certificates(item))
    return out


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise UsageError("the validation time must be timezone-aware")
    return at.astimezone(dt.UTC)


def _clamp(when: dt.datetime, leaf: x509.Certificate, skew: dt.timedelta) -> dt.datetime:
    """Move the instant handed to pyca into the leaf's validity when within ``skew`` of it."""
    if leaf.not_valid_after_utc < when <= _shift(leaf.not_valid_after_utc, skew):
        return leaf.not_valid_after_utc
    if _shift(leaf.not_valid_before_utc, -skew) <= when < leaf.not_valid_before_utc:
        return leaf.not_valid_before_utc
    return when


def _path_len(cert: x509.Certificate) -> int | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except Exception:
        return None


_CDP_CACHE: dict[int, tuple[x509.Certificate, list[str]]] = {}


def _cdp_urls(cert: x509.Certificate) -> list[str]:
    """The certificate's CRL distribution point URIs (memoised per certificate object)."""
    hit = _CDP_CACHE.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    try:
        value = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        urls = crl_urls(value)
    except Exception:
        urls = []
    if len(_CDP_CACHE) >= 1024:
        _CDP_CACHE.clear()
    _CDP_CACHE[id(cert)] = (cert, urls)
    return urls


def _subject(cert: x509.Certificate) -> str:
    """RFC 4514 subject for messages, from the raw names parsed once per certificate."""
    return cert_names(cert).subject.rfc4514() or "(empty subject)"
