"""Full TLS mutual-certificate handshakes per second: capif8sec vs bare stdlib contexts.

Both configurations use the same certificates, the same TS 33.210 settings (versions, TLS 1.2
suites, no tickets) and loopback TCP; capif8sec adds its post-handshake check on BOTH sides
(the server checks the ROF's chain as a client certificate, the client checks the CCF's as a
server certificate, CRLs included).  Rounds alternate between the two so that machine noise hits
both alike.  Also reported: TLS 1.2, and the cost of the check alone in microseconds.

Last line: the TLS 1.3 ratio capif8sec/stdlib (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from _loopback import Server, handshake_round, no_check

from capif8sec import tls
from capif8sec.testing import TestPKI


def _stdlib_pair(
    d: Path, version: ssl.TLSVersion, profile: tls.TlsProfile
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "ccf-server.pem", d / "ccf-server.key")
    server.load_verify_locations(d / "root-ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(d / "rof-client.pem", d / "rof-client.key")
    client.load_verify_locations(d / "root-ca.pem")
    for ctx in (server, client):
        profile.apply(ctx)
    client.maximum_version = version
    return server, client


def _capif_pair(
    d: Path, version: ssl.TLSVersion, profile: tls.TlsProfile
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    anchors = (d / "root-ca.pem").read_bytes()
    crl = (d / "tls-ca.crl.pem").read_bytes()
    server = tls.server_context(
        present=tls.Identity.from_files(d / "ccf-server.pem", d / "ccf-server.key"),
        verify=tls.PeerVerification(anchors, crls=[crl]),
        profile=profile,
    )
    client = tls.client_context(
        present=tls.Identity.from_files(d / "rof-client.pem", d / "rof-client.key"),
        verify=tls.PeerVerification(anchors, crls=[crl]),
        profile=profile,
    )
    client.maximum_version = version
    return server, client


def _measure(d: Path, version: ssl.TLSVersion, rounds: int, n: int) -> tuple[float, float, float]:
    """Median rates of both sides and the median of the per-round ratios (ABBA order)."""
    profile = tls.TS33210
    s_std, c_std = _stdlib_pair(d, version, profile)
    s_cap, c_cap = _capif_pair(d, version, profile)
    std_server = Server(s_std, no_check)
    cap_server = Server(s_cap, tls.check_connection)
    std: list[float] = []
    cap: list[float] = []
    try:
        handshake_round(std_server, c_std, no_check, 20)  # warm-up
        handshake_round(cap_server, c_cap, tls.check_connection, 20)
        for i in range(rounds):
            if i % 2 == 0:
                std.append(handshake_round(std_server, c_std, no_check, n))
                cap.append(handshake_round(cap_server, c_cap, tls.check_connection, n))
            else:
                cap.append(handshake_round(cap_server, c_cap, tls.check_connection, n))
                std.append(handshake_round(std_server, c_std, no_check, n))
    finally:
        std_server.close()
        cap_server.close()
    ratios = [c / s for c, s in zip(cap, std, strict=True)]
    return statistics.median(std), statistics.median(cap), statistics.median(ratios)


def _check_cost(d: Path, n: int) -> float:
    """Microseconds for one server-side check_connection on an established connection."""
    s_cap, c_cap = _capif_pair(d, ssl.TLSVersion.TLSv1_3, tls.TS33210)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    box: list[ssl.SSLSocket] = []

    def accept() -> None:
        raw, _ = listener.accept()
        box.append(s_cap.wrap_socket(raw, server_side=True))

    t = threading.Thread(target=accept)
    t.start()
    client = c_cap.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="ccf.capif.example"
    )
    t.join()
    conn = box[0]
    tls.check_connection(conn)
    start = time.perf_counter()
    for _ in range(n):
        tls.check_connection(conn)
    cost = (time.perf_counter() - start) / n * 1e6
    conn.close()
    client.close()
    listener.close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds (ABBA)")
    parser.add_argument("-n", type=int, default=60, help="handshakes per round and side")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        d = Path(tmp)
        TestPKI().write(d)
        print(f"check alone (server side, TLS 1.3): {_check_cost(d, 2000):.1f} us")
        std12, cap12, ratio12 = _measure(d, ssl.TLSVersion.TLSv1_2, args.rounds, args.n)
        print(
            f"TLS 1.2 mutual: stdlib {std12:.0f}/s, capif8sec {cap12:.0f}/s, "
            f"ratio {ratio12:.3f} (median of per-round ratios)"
        )
        std13, cap13, ratio13 = _measure(d, ssl.TLSVersion.TLSv1_3, args.rounds, args.n)
        print(f"TLS 1.3 mutual: stdlib {std13:.0f}/s, capif8sec {cap13:.0f}/s")
        print(f"ratio capif8sec/stdlib TLS 1.3 handshakes: {ratio13:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
