"""Server CPU per SCRAM-SHA-256-PLUS login (R53: no key stretching on the server).

Measures ``time.process_time`` around what the CCF does for one login: creating the exchange
(``ScramAuthenticator.exchange``), handling the client-first and handling the client-final
(proof check and ServerSignature).  The ROF side is excluded: it derives its keys once with
PBKDF2 (reported for scale, not counted) and builds each client-final from them, outside the
timed regions.  Failed logins -- wrong password, unknown user -- are measured too: they must
cost the same as each other (R54).

Baseline, measured in the same run: the irreducible crypto of a login -- one HMAC-SHA-256 over
an AuthMessage of the same size plus one SHA-256 of a 32-byte key.

Last line: ``server CPU per login: X ms (goal < 1 ms); ratio vs bare HMAC baseline: Y x``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import statistics
import time

from capif8sec.auth import ChannelBinding, ScramAuthenticator, ScramVerifier, make_verifier
from capif8sec.auth.scram import DEFAULT_ITERATIONS

PASSWORD = "correct horse battery staple"
BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"ccf certificate").digest())
GS2 = b"p=tls-server-end-point,,"


class _CachedClient:
    """An ROF that derived ClientKey/ServerKey once (RFC 5802 allows caching them)."""

    def __init__(self, username: str, verifier: ScramVerifier, salted_password: bytes) -> None:
        self.username = username
        self.client_key = hmac.digest(salted_password, b"Client Key", "sha256")
        self.stored_key = hashlib.sha256(self.client_key).digest()
        self.bare = b""
        self.auth_message = b""

    def first(self) -> bytes:
        self.bare = f"n={self.username},r={secrets.token_urlsafe(24)}".encode()
        return GS2 + self.bare

    def final(self, server_first: bytes) -> bytes:
        nonce = server_first.split(b",")[0][2:]
        without_proof = b"c=" + base64.b64encode(GS2 + BINDING.data) + b",r=" + nonce
        self.auth_message = b",".join((self.bare, server_first, without_proof))
        signature = hmac.digest(self.stored_key, self.auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(self.client_key, signature, strict=True))
        return without_proof + b",p=" + base64.b64encode(proof)


def _logins(auth: ScramAuthenticator, client: _CachedClient, n: int, *, ok: bool) -> float:
    """Server CPU seconds per login over ``n`` logins."""
    total = 0
    for _ in range(n):
        first = client.first()
        t0 = time.process_time_ns()
        server = auth.exchange(BINDING)
        server_first = server.receive(first)
        t1 = time.process_time_ns()
        assert server_first is not None
        final = client.final(server_first)
        t2 = time.process_time_ns()
        try:
            server.receive(final)
        except Exception:
            if ok:
                raise
        t3 = time.process_time_ns()
        assert server.complete == ok
        total += (t1 - t0) + (t3 - t2)
    return total / n / 1e9


def _baseline(auth_message: bytes, n: int) -> float:
    """CPU seconds for one HMAC-SHA-256 of the AuthMessage plus one SHA-256 of a key."""
    key = secrets.token_bytes(32)
    t0 = time.process_time_ns()
    for _ in range(n):
        hmac.digest(key, auth_message, "sha256")
        hashlib.sha256(key).digest()
    return (time.process_time_ns() - t0) / n / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=2000, help="logins per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    t0 = time.process_time()
    verifier = make_verifier("rof-1", PASSWORD)  # the default iteration count
    stretch = time.process_time() - t0
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), verifier.salt, verifier.iterations)
    auth = ScramAuthenticator({"rof-1": verifier}.get)
    good = _CachedClient("rof-1", verifier, salted)
    ghost = _CachedClient("ghost", verifier, salted)
    wrong = _CachedClient("rof-1", verifier, hashlib.sha256(b"not the password").digest())

    _logins(auth, good, 200, ok=True)  # warm-up
    known: list[float] = []
    bad: list[float] = []
    unknown: list[float] = []
    base: list[float] = []
    for _ in range(args.rounds):  # interleaved rounds: noise hits all four alike
        known.append(_logins(auth, good, args.logins, ok=True))
        bad.append(_logins(auth, wrong, args.logins, ok=False))
        unknown.append(_logins(auth, ghost, args.logins, ok=False))
        base.append(_baseline(good.auth_message, args.logins * 5))
    per_login, per_bad, per_unknown, floor = (
        statistics.median(x) for x in (known, bad, unknown, base)
    )

    print(f"logins: {args.rounds} rounds x {args.logins}, AuthMessage {len(good.auth_message)} B")
    print(f"client PBKDF2 at {DEFAULT_ITERATIONS} iterations (excluded): {stretch * 1e3:.0f} ms")
    print(
        f"server CPU per failed login: wrong password {per_bad * 1e3:.3f} ms, "
        f"unknown user {per_unknown * 1e3:.3f} ms (R54: same work)"
    )
    print(f"baseline (1 HMAC-SHA-256 + 1 SHA-256): {floor * 1e6:.2f} us")
    print(
        f"server CPU per login: {per_login * 1e3:.3f} ms (goal < 1 ms); "
        f"ratio vs bare HMAC baseline: {per_login / floor:.1f}x"
    )


if __name__ == "__main__":
    main()
