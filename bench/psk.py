"""TLS 1.3 external-PSK handshakes per second: capif8sec vs bare stdlib PSK contexts (3.13+).

Same keys, same loopback TCP, rounds alternating between the two.  capif8sec's side includes
the store lookup, the per-connection identity attribution and the post-handshake check on both
sides.  Last line: the ratio capif8sec/stdlib (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import statistics
import sys
from collections.abc import Sequence

from _loopback import Server, handshake_round, no_check

from capif8sec.auth.credentials import PskCredential
from capif8sec.tls import check_connection
from capif8sec.tls.psk import HAS_PSK, psk_client_context, psk_server_context

CCF = "ccf.capif.example"


class _Store:
    """A dict-backed CredentialStore (the lookup itself costs what a dict costs)."""

    def __init__(self, creds: Sequence[PskCredential]) -> None:
        self._by_identity = {c.identity: [c] for c in creds}

    def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
        return self._by_identity.get(identity, [])

    def scram_verifier(self, username: str, *, at: dt.datetime) -> None:
        return None


def _stdlib(identity: str, key: bytes) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = client_min = ssl.TLSVersion.TLSv1_2
    server.num_tickets = 0
    keys = {identity: key}
    server.set_psk_server_callback(lambda ident: keys.get(ident or "", b""))  # type: ignore[attr-defined]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = client_min
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_psk_client_callback(lambda hint: (identity, key))  # type: ignore[attr-defined]
    return server, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=200, help="handshakes per round")
    args = parser.parse_args()
    if not HAS_PSK:
        print(f"TLS-level PSK needs Python >= 3.13; this is {sys.version.split()[0]}")
        print("ratio capif8sec/stdlib PSK handshakes: n/a (run with Python 3.13)")
        return
    creds = [PskCredential(f"rof-{i}".encode(), bytes([i]) * 32, CCF) for i in range(1, 101)]
    cred = creds[41]
    s_cap = psk_server_context(store=_Store(creds), ccf_identity=CCF)
    c_cap = psk_client_context(credential=cred)
    s_std, c_std = _stdlib(cred.identity.decode(), cred.key)
    std_server, cap_server = Server(s_std, no_check), Server(s_cap, check_connection)
    std: list[float] = []
    cap: list[float] = []
    try:
        handshake_round(std_server, c_std, no_check, 20)
        handshake_round(cap_server, c_cap, check_connection, 20)
        for _ in range(args.rounds):
            std.append(handshake_round(std_server, c_std, no_check, args.n))
            cap.append(handshake_round(cap_server, c_cap, check_connection, args.n))
    finally:
        std_server.close()
        cap_server.close()
    s, c = statistics.median(std), statistics.median(cap)
    print(f"TLS 1.3 PSK: stdlib {s:.0f}/s, capif8sec {c:.0f}/s (medians of {args.rounds} rounds)")
    print(f"ratio capif8sec/stdlib PSK handshakes: {c / s:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
