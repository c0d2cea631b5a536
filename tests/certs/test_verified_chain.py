"""``ChainValidator.check_verified_chain``: the chain OpenSSL validated in a handshake.

The post-handshake check hands in the same DER chain on every handshake of a peer.  The
validator keeps what depends on the bytes alone (linking, lint reports, identities, checked
CRLs) and redoes the time-dependent part on every call (R24, R25, R26).  The property here: a
validator that has seen a chain before answers exactly as a validator that never has, at any
instant, under any CRL set -- accepted with the same statuses, or refused with the same error.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from capif8sec.certs import ChainValidator
from capif8sec.errors import CertificateExpired, CertificateRevoked, ChainValidationError
from capif8sec.testing import TestPKI

# An hour from now: the test PKI's certificates are valid from an hour ago for a year, so T0
# and the days after it fall inside every validity, and the days before it do not.
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


class _World:
    """A PKI, a leaf, and CRLs of the TLS CA and the root with staggered validity."""

    def __init__(self) -> None:
        self.pki = pki = TestPKI()
        self.leaf = pki.client_cert("rof-plan")
        self.other = pki.client_cert("rof-other")
        self.chain = [_der(self.leaf.cert), _der(pki.tls_ca.cert), _der(pki.root_ca.cert)]
        tls_ca, root = pki.tls_ca, pki.root_ca
        self.crls: dict[str, bytes] = {
            "tls-old": tls_ca.crl_pem(this_update=T0 - DAY, next_update=T0 + 2 * DAY),
            "tls-new": tls_ca.crl_pem(this_update=T0 + DAY, next_update=T0 + 4 * DAY),
            "tls-same-time": tls_ca.crl_pem(this_update=T0 + DAY, next_update=T0 + 5 * DAY),
            "root": root.crl_pem(this_update=T0 - DAY, next_update=T0 + 3 * DAY),
            "root-late": root.crl_pem(this_update=T0 + 2 * DAY, next_update=T0 + 6 * DAY),
        }
        end = self.leaf.cert.not_valid_after_utc
        self.crls["tls-at-expiry"] = tls_ca.crl_pem(this_update=end - DAY, next_update=end + DAY)
        self.crls["root-at-expiry"] = root.crl_pem(this_update=end - DAY, next_update=end + DAY)
        # From here on the TLS CA lists the leaf: only CRLs made now carry it.
        self.crls["tls-revoking"] = tls_ca.crl_pem(
            revoked=[self.leaf], this_update=T0 + 3 * DAY, next_update=T0 + 7 * DAY
        )

    def validator(self, names: list[str], **kwargs: object) -> ChainValidator:
        return ChainValidator(
            self.pki.trust_anchor_pem,
            crls=[self.crls[n] for n in names],
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def world() -> _World:
    return _World()


def _outcome(v: ChainValidator, chain: list[bytes], at: dt.datetime) -> object:
    try:
        r = v.check_verified_chain(chain, role="client", at=at)
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "rule", None), str(exc))
    assert r.validated_at == at
    return (r.chain, r.revocation, r.reports, r.identities, r.deviations, r.role, r.profile)


# (instant to start from, seconds from it): around T0, where the CRLs change, and around the
# leaf's notAfter, where the "-at-expiry" CRLs are current
_offsets = st.tuples(
    st.sampled_from(["t0", "end"]),
    st.one_of(
        st.integers(-3 * 86400, 9 * 86400),
        st.sampled_from([-86400, 0, 86400, 2 * 86400, 3 * 86400, 4 * 86400, 5 * 86400]).flatmap(
            lambda base: st.integers(base - 1, base + 1)
        ),
    ),
)
_crl_sets = st.lists(
    st.sampled_from(
        [
            "tls-old",
            "tls-new",
            "tls-same-time",
            "root",
            "root-late",
            "tls-revoking",
            "tls-at-expiry",
            "root-at-expiry",
        ]
    ),
    unique=True,
)


@settings(max_examples=120, deadline=None)
@given(
    crls=_crl_sets,
    offsets=st.lists(_offsets, min_size=1, max_size=6),
    skew=st.sampled_from([0, 1, 3600]),
)
def test_r24_r25_r26_a_chain_seen_before_is_judged_as_a_new_one(
    world: _World, crls: list[str], offsets: list[tuple[str, int]], skew: int
) -> None:
    """At every instant and under every CRL set, the warm validator agrees with a cold one."""
    skew_td = dt.timedelta(seconds=skew)
    warm = world.validator(crls, clock_skew=skew_td)
    end = world.leaf.cert.not_valid_after_utc
    for start, offset in offsets:
        at = (T0 if start == "t0" else end) + dt.timedelta(seconds=offset)
        cold = world.validator(crls, clock_skew=skew_td, cache_size=0)
        assert _outcome(warm, world.chain, at) == _outcome(cold, world.chain, at)


def test_r25_r26_a_revocation_is_seen_on_the_next_call(world: _World) -> None:
    """R25/R26: accepted, then the CRL set is replaced by one listing the leaf: refused."""
    v = world.validator(["tls-old", "root"])
    good = v.check_verified_chain(world.chain, role="client", at=T0)
    assert good.revocation[0].startswith("good (CRL")
    assert v.check_verified_chain(world.chain, role="client", at=T0).revocation == good.revocation
    v.replace_crls([world.crls["tls-revoking"], world.crls["root-late"]])
    with pytest.raises(CertificateRevoked):
        v.check_verified_chain(world.chain, role="client", at=T0 + 4 * DAY)


def test_r25_r26_the_newest_current_crl_decides(world: _World) -> None:
    """Two current CRLs of the TLS CA: the newer one lists the leaf, and it decides."""
    v = world.validator(["tls-old", "tls-new", "tls-revoking", "root", "root-late"])
    assert (
        v.check_verified_chain(world.chain, role="client", at=T0).revocation[0].startswith("good")
    )
    with pytest.raises(CertificateRevoked):  # tls-revoking is current and newest from T0+3d
        v.check_verified_chain(world.chain, role="client", at=T0 + 3 * DAY + dt.timedelta(1))
    # and before that instant, the same validator accepts again: nothing was cached
    assert v.check_verified_chain(world.chain, role="client", at=T0 + DAY).revocation


def test_r24_r26_expiry_after_an_accepted_call(world: _World) -> None:
    """R24/R26: a chain accepted a second before its leaf expires is refused a second after."""
    v = world.validator(["tls-at-expiry", "root-at-expiry"])
    end = world.leaf.cert.not_valid_after_utc
    for _ in range(2):  # the second call is answered by what the first one kept
        v.check_verified_chain(world.chain, role="client", at=end - dt.timedelta(seconds=1))
    with pytest.raises(CertificateExpired):
        v.check_verified_chain(world.chain, role="client", at=end + dt.timedelta(seconds=1))


def test_r26_a_stale_crl_is_refused_after_it_served(world: _World) -> None:
    """R25/R26: a CRL that was current is not used once its nextUpdate passed."""
    v = world.validator(["tls-old", "root"])
    v.check_verified_chain(world.chain, role="client", at=T0)
    with pytest.raises(Exception) as info:
        v.check_verified_chain(world.chain, role="client", at=T0 + 2 * DAY + dt.timedelta(1))
    assert "stale" in str(info.value)


def test_r24_a_chain_that_does_not_end_at_an_anchor_is_refused_every_time(world: _World) -> None:
    """R24: a refusal is never remembered as anything else."""
    v = world.validator(["tls-old", "root"])
    broken = [world.chain[0], _der(world.other.cert), world.chain[2]]
    for _ in range(2):
        with pytest.raises(ChainValidationError):
            v.check_verified_chain(broken, role="client", at=T0)


def test_r24_r25_far_future_times_with_a_clock_skew(world: _World) -> None:
    """A CRL valid until 9999-12-31 and a clock skew: accepted, again and again (the skew is
    added without overflowing; found by review)."""
    far = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    pki = TestPKI()
    leaf = pki.client_cert("rof-far")
    chain = [_der(leaf.cert), _der(pki.tls_ca.cert), _der(pki.root_ca.cert)]
    crls = [pki.root_ca.crl_pem(next_update=far), pki.crl(next_update=far)]
    v = ChainValidator(pki.trust_anchor_pem, crls=crls, clock_skew=dt.timedelta(minutes=5))
    for _ in range(2):
        assert v.check_verified_chain(chain, role="client").revocation[0].startswith("good")
    with pytest.raises(CertificateExpired):  # and an instant at the end of time is refused
        v.check_verified_chain(chain, role="client", at=far)


def test_r26_replacing_the_crls_drops_what_was_kept_for_the_old_ones(world: _World) -> None:
    """Nothing made with a CRL set outlives it: a refresh leaves no old CRL held in memory."""
    v = world.validator(["tls-old", "root"])
    v.check_verified_chain(world.chain, role="client", at=T0)
    assert v._plans
    v.replace_crls([world.crls["tls-old"], world.crls["root"]])
    assert not v._plans


def test_r24_instants_at_the_ends_of_time_are_refused_not_crashed(world: _World) -> None:
    """R24: with a clock skew, an instant at either end of the datetime range is a typed
    refusal (the skew saturates instead of overflowing)."""
    v = world.validator(["tls-old", "root"], clock_skew=dt.timedelta(minutes=5))
    leaf, tls_ca = world.chain[0], world.chain[1]
    for at in (dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)):
        with pytest.raises(CertificateExpired):
            v.check_verified_chain(world.chain, role="client", at=at)
        with pytest.raises(CertificateExpired):
            v.verify(leaf, [tls_ca], role="client", at=at)
