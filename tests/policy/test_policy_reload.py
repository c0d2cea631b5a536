"""Reloads while decisions run: every decision sees one whole policy, old or new (R62: the
revocation list is consulted on every decision too)."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from policy_helpers import cert_peer

from capif8sec.policy import Policy, PolicyEngine, PolicyRequest, Reason, Rule

ROF_A = "uri:urn:capif:rof:rof-a"
OWNER_A = "msisdn-491700000001"
OWNER_B = "msisdn-491700000002"
OTHER_OWNER = "msisdn-491800000003"
FILLER = 400  # extra rules, so that building an index takes long enough to race with


def filler(tag: str) -> list[Rule]:
    return [
        Rule(f"{tag}-{i}", f"psk:filler-{i}", f"msisdn-4919{i:08d}", "authorize", "psk")
        for i in range(FILLER)
    ]


POLICY_A = Policy(
    [
        Rule("a-exact", ROF_A, OWNER_A, "authorize", "certificate"),
        Rule("a-pattern", "uri:urn:capif:rof:*", "msisdn-4918*", "authorize", "certificate"),
        *filler("a"),
    ],
    version="A",
)
POLICY_B = Policy(
    [Rule("b-exact", ROF_A, OWNER_B, "authorize", "certificate"), *filler("b")],
    version="B",
)

CASES = [
    (cert_peer("urn:capif:rof:rof-a"), PolicyRequest("authorize", OWNER_A)),
    (cert_peer("urn:capif:rof:rof-a"), PolicyRequest("authorize", OWNER_B)),
    (cert_peer("urn:capif:rof:rof-b"), PolicyRequest("authorize", OTHER_OWNER)),
]
#: (allowed, reason, rule) of each case under each policy version.
EXPECTED = {
    "A": [
        (True, Reason.ALLOWED, "a-exact"),
        (False, Reason.OWNER_NOT_ALLOWED, None),
        (True, Reason.ALLOWED, "a-pattern"),
    ],
    "B": [
        (False, Reason.OWNER_NOT_ALLOWED, None),
        (True, Reason.ALLOWED, "b-exact"),
        (False, Reason.UNKNOWN_IDENTITY, None),
    ],
}


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_switching")
def test_decisions_during_100_reloads_see_one_policy_or_the_other() -> None:
    engine = PolicyEngine(POLICY_A)
    stop = threading.Event()
    errors: list[BaseException] = []
    wrong: list[tuple[str | None, int, object]] = []
    seen: Counter[str | None] = Counter()

    def decide() -> None:
        try:
            i = 0
            while not stop.is_set():
                case = i % len(CASES)
                peer, request = CASES[case]
                decision = engine.decide(peer, request)
                version = decision.policy_version
                seen[version] += 1
                got = (decision.allowed, decision.reason, decision.rule)
                if version not in EXPECTED or got != EXPECTED[version][case]:
                    wrong.append((version, case, got))
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(100):
            engine.reload(POLICY_B if n % 2 == 0 else POLICY_A)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors
    assert not wrong, wrong[:5]
    assert seen["A"] > 0 and seen["B"] > 0
    assert engine.policy is POLICY_A  # the last reload won


@pytest.mark.usefixtures("fast_switching")
def test_revocations_during_decisions_are_seen_at_once() -> None:
    """R62: once revoke_identity returns, no decision allows the identity any more."""
    engine = PolicyEngine(POLICY_A)
    peer, request = CASES[0]
    revoked = threading.Event()
    late_allows: list[int] = []
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            for _ in range(20_000):
                was_revoked = revoked.is_set()  # read before the decision starts
                if engine.decide(peer, request).allowed and was_revoked:
                    late_allows.append(1)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(50):
        engine.revocations.revoke_owner(f"msisdn-4917{n:08d}")  # churn the snapshot
    engine.revocations.revoke_identity(ROF_A)
    revoked.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and not late_allows
    assert engine.decide(peer, request).reason is Reason.IDENTITY_REVOKED
