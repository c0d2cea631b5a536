"""``capif8sec probe``: check a live TLS endpoint against the TS 33.210 / TS 33.310 profiles.

The probe is an active client.  To show that a server *refuses* old versions and weak suites it
must offer them, so the attempts that test refusals lower OpenSSL's security level
(``@SECLEVEL=0``) and protocol floor for themselves only.  What the local OpenSSL cannot offer at
all (SSLv3, TLS compression in OpenSSL 3) is reported as "not testable", never as a pass.
Client-initiated renegotiation is tested with the ``openssl s_client`` binary (Python's ``ssl``
cannot renegotiate), when it is on PATH.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from capif8sec.certs import ChainValidator, lint
from capif8sec.certs.identities import matches_reference
from capif8sec.errors import Capif8secError
from capif8sec.tls.check import peer_chain_der
from capif8sec.tls.profile import TLS12_DHE_SUITES, TLS12_ECDHE_SUITES

__all__ = ["Check", "ProbeResult", "Unreachable", "probe"]

PASS, FAIL, INFO, UNTESTABLE = "pass", "fail", "info", "not testable"

_FORBIDDEN_MARKERS: dict[str, Callable[[str], bool]] = {
    "CBC": lambda n: "GCM" not in n and "CHACHA" not in n and "CCM" not in n,
    "RSA key exchange": lambda n: not n.startswith(("ECDHE-", "DHE-", "TLS_")),
    "NULL": lambda n: "NULL" in n,
    "anonymous": lambda n: "ADH" in n or "AECDH" in n or "anon" in n,
    "export": lambda n: "EXP" in n,
    "RC4": lambda n: "RC4" in n,
    "3DES": lambda n: "DES-CBC3" in n or "3DES" in n,
}


class Unreachable(Capif8secError):
    """The endpoint could not be reached at all."""


@frozen
class Check:
    """One probe finding."""

    check: str
    clause: str
    result: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {
            "check": self.check,
            "clause": self.clause,
            "result": self.result,
            "message": self.message,
        }


@frozen
class ProbeResult:
    """Everything the probe found; ``compliant`` when no check failed."""

    target: str
    checks: tuple[Check, ...]

    @property
    def compliant(self) -> bool:
        """True when no check has result ``fail``."""
        return all(c.result != FAIL for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "target": self.target,
            "compliant": self.compliant,
            "checks": [c.as_dict() for c in self.checks],
        }


class _Prober:
    def __init__(
        self,
        host: str,
        port: int,
        server_name: str | None,
        cert: str | None,
        key: str | None,
        timeout: float,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.server_name = server_name or host
        self.cert, self.key = cert, key

    def context(
        self, version: ssl.TLSVersion, ciphers: str | None = None, client_cert: bool = True
    ) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the chain is judged separately, by capif8sec
        if ciphers is not None:  # one suite, weak ones included: lower the level for it
            ctx.set_ciphers(f"{ciphers}:@SECLEVEL=0")
        elif version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point of the attempt
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        if client_cert and self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def connect(self, ctx: ssl.SSLContext) -> ssl.SSLSocket:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise Unreachable(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        try:
            sock = ctx.wrap_socket(raw, server_hostname=self.server_name)
        except BaseException:
            raw.close()
            raise
        return sock

    def attempt(self, ctx: ssl.SSLContext) -> tuple[bool, str, ssl.SSLSocket | None]:
        try:
            sock = self.connect(ctx)
        except (ssl.SSLError, OSError) as exc:
            return False, str(exc), None
        cipher = sock.cipher()
        return True, f"{sock.version()} {cipher[0] if cipher else ''}", sock


def _version_checks(p: _Prober) -> list[Check]:
    checks = []
    if not getattr(ssl, "HAS_SSLv3", False):
        checks.append(
            Check(
                "SSLv3 refused",
                "TS 33.210 6.2.1",
                UNTESTABLE,
                "the local OpenSSL cannot offer SSLv3 (built without it)",
            )
        )
    for version, label in ((ssl.TLSVersion.TLSv1, "TLSv1.0"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
        try:
            ctx = p.context(version)
        except (ssl.SSLError, ValueError) as exc:
            checks.append(
                Check(
                    f"{label} refused",
                    "TS 33.210 6.2.1",
                    UNTESTABLE,
                    f"the local OpenSSL cannot offer {label}: {exc}",
                )
            )
            continue
        ok, detail, sock = p.attempt(ctx)
        if sock:
            sock.close()
        checks.append(
            Check(
                f"{label} refused",
                "TS 33.210 6.2.1",
                FAIL if ok else PASS,
                f"{label} accepted ({detail})" if ok else f"{label} refused",
            )
        )
    for version, label in (
        (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
        (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
    ):
        ok, detail, sock = p.attempt(p.context(version))
        if sock:
            sock.close()
        checks.append(
            Check(
                f"{label} accepted",
                "TS 33.210 6.2.1",
                PASS if ok else FAIL,
                detail if ok else f"{label} not accepted: {detail}",
            )
        )
    return checks


def _tls12_suites(p: _Prober) -> list[str]:
    probe_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe_ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [
        c["name"]
        for c in probe_ctx.get_ciphers()
        if c["protocol"] in ("TLSv1.2", "TLSv1.0", "SSLv3") and not c["name"].startswith("TLS_")
    ]


def _suite_checks(p: _Prober, server_key: str | None) -> list[Check]:
    accepted = []
    for name in _tls12_suites(p):
        try:
            ctx = p.context(ssl.TLSVersion.TLSv1_2, name)
        except ssl.SSLError:
            continue
        ok, _, sock = p.attempt(ctx)
        if sock:
            sock.close()
        if ok:
            accepted.append(name)
    allowed = set(TLS12_ECDHE_SUITES + TLS12_DHE_SUITES)
    checks = []
    for name in accepted:
        families = [f for f, test in _FORBIDDEN_MARKERS.items() if test(name)]
        if name in allowed:
            checks.append(Check(f"TLS 1.2 suite {name}", "TS 33.210 6.2.3", PASS, "allowed"))
        else:
            # No forbidden family matched: AEAD with forward secrecy, but not on the R31 list.
            why = ", ".join(families) or "not one of the TS 33.210 suites"
            checks.append(
                Check(
                    f"TLS 1.2 suite {name}",
                    "TS 33.210 6.2.3",
                    FAIL,
                    f"accepted but outside the profile ({why})",
                )
            )
    mandatory = {"ec": "ECDHE-ECDSA-AES128-GCM-SHA256", "rsa": "DHE-RSA-AES128-GCM-SHA256"}
    if server_key in mandatory:
        name = mandatory[server_key]
        present = name in accepted
        checks.append(
            Check(
                f"mandatory suite {name}",
                "TS 33.210 6.2.3",
                PASS if present else FAIL,
                "accepted" if present else "not accepted (mandatory for this key)",
            )
        )
    checks.append(
        Check("TLS 1.2 suites accepted", "TS 33.210 6.2.3", INFO, ", ".join(accepted) or "none")
    )
    return checks


def _renegotiation_check(p: _Prober) -> Check:
    clause = "TS 33.210 6.2.3"
    binary = shutil.which("openssl")
    if binary is None:
        return Check(
            "client-initiated renegotiation refused",
            clause,
            UNTESTABLE,
            "needs the openssl binary on PATH",
        )
    cmd = [
        binary,
        "s_client",
        "-connect",
        f"{p.host}:{p.port}",
        "-tls1_2",
        "-servername",
        p.server_name,
    ]
    if p.cert and p.key:
        cmd += ["-cert", p.cert, "-cert_chain", p.cert, "-key", p.key]
    proc = subprocess.Popen(  # noqa: S603 -- fixed argv, no shell
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + p.timeout
        while time.monotonic() < deadline and not any("Verify return code" in x for x in lines):
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        mark = len(lines)
        if proc.poll() is not None or mark == 0:
            return Check(
                "client-initiated renegotiation refused",
                clause,
                UNTESTABLE,
                "no TLS 1.2 session could be established to try it",
            )
        assert proc.stdin is not None
        try:
            proc.stdin.write(b"R\n")
            proc.stdin.flush()
        except OSError:
            pass
        end = time.monotonic() + min(p.timeout, 3.0)
        while time.monotonic() < end:
            after = "".join(lines[mark:])
            if "no renegotiation" in after or proc.poll() is not None:
                break
            if "RENEGOTIATING" in after and "verify return" in after:
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
        reader.join(1)
    after = "".join(lines[mark:])
    if "RENEGOTIATING" in after and "verify return" in after and "no renegotiation" not in after:
        return Check(
            "client-initiated renegotiation refused",
            clause,
            FAIL,
            "the server renegotiated at the client's request",
        )
    return Check("client-initiated renegotiation refused", clause, PASS, "refused")


def _client_auth_check(p: _Prober) -> Check:
    """Connect without a client certificate and ask for something: a demanding server refuses.

    Under TLS 1.3 the refusal arrives after the client's side of the handshake completed, so a
    completed handshake proves nothing: only application data coming back does.
    """
    clause = "TR 33.700-22 6.2.2.1"
    served, detail = False, ""
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        _, detail, sock = p.attempt(p.context(version, client_cert=False))
        if sock is None:
            continue
        try:
            sock.settimeout(p.timeout)
            sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            served = bool(sock.recv(1))
            detail = "connection closed without data" if not served else detail
        except (ssl.SSLError, OSError) as exc:
            detail = str(exc)
        finally:
            sock.close()
        break
    if served:
        return Check(
            "client certificate demanded",
            clause,
            FAIL,
            "served a client that presented no certificate",
        )
    return Check("client certificate demanded", clause, PASS, f"refused without one ({detail})")


def _chain_checks(
    p: _Prober, cas: Sequence[bytes], crls: Sequence[bytes]
) -> tuple[list[Check], str | None]:
    ok, detail, sock = p.attempt(p.context(ssl.TLSVersion.TLSv1_3))
    if not ok or sock is None:
        ok, detail, sock = p.attempt(p.context(ssl.TLSVersion.TLSv1_2))
    if not ok or sock is None:
        return [
            Check(
                "server certificate", "TS 33.310 6.1.3a", FAIL, f"no handshake to read it: {detail}"
            )
        ], None
    try:
        ders = peer_chain_der(sock, verified=False)
        compression = sock.compression()
    finally:
        sock.close()
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    leaf = certs[0]
    checks = [
        Check(
            "TLS compression off",
            "TS 33.210 6.2.3",
            # R34: the probe never offers compression (OpenSSL 3 cannot), so "none negotiated"
            # proves nothing about the server: not testable, never a pass (module docstring).
            UNTESTABLE if compression is None else FAIL,
            "none negotiated (the local OpenSSL 3 offers no compression, so an offer "
            "could not be tested)"
            if compression is None
            else f"negotiated {compression}",
        )
    ]
    issuer = certs[1] if len(certs) > 1 else None
    report = lint(leaf, "tls-entity", "server", issuer=issuer)
    for f in report.findings:
        result = FAIL if f.severity.value == "error" else INFO
        checks.append(Check(f"server certificate {f.rule}", f.clause, result, f.message))
    if report.compliant:
        checks.append(
            Check(
                "server certificate profile", "TS 33.310 6.1.3a", PASS, f"{report.subject} conforms"
            )
        )
    if cas:
        deviations = () if crls else ("no-revocation-check",)
        try:
            validator = ChainValidator(list(cas), crls=list(crls), deviations=deviations)
            verified = validator.verify(leaf, certs[1:], role="server", at=dt.datetime.now(dt.UTC))
            named = matches_reference(verified.identities, p.server_name)
            checks.append(
                Check(
                    "server chain",
                    "TS 33.310 6.3.1",
                    PASS,
                    "valid" + ("" if crls else " (revocation not checked: no --crl)"),
                )
            )
            checks.append(
                Check(
                    "server identity",
                    "RFC 9525",
                    PASS if named else FAIL,
                    f"{'matches' if named else 'does not match'} {p.server_name}",
                )
            )
        except Capif8secError as exc:
            checks.append(Check("server chain", "TS 33.310 6.3.1", FAIL, str(exc)))
    key = leaf.public_key()
    kind = {ec.EllipticCurvePublicKey: "ec", rsa.RSAPublicKey: "rsa"}
    return checks, next((v for k, v in kind.items() if isinstance(key, k)), None)


def probe(
    host: str,
    port: int,
    *,
    cas: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
    cert: str | None = None,
    key: str | None = None,
    server_name: str | None = None,
    timeout: float = 5.0,
) -> ProbeResult:
    """Probe ``host:port``; raise :class:`Unreachable` when nothing answers."""
    p = _Prober(host, port, server_name, cert, key, timeout)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise Unreachable(f"cannot connect to {host}:{port}: {exc}") from None
    checks = _version_checks(p)
    chain_checks, server_key = _chain_checks(p, cas, crls)
    checks += _suite_checks(p, server_key)
    checks.append(_renegotiation_check(p))
    checks.append(_client_auth_check(p))
    checks += chain_checks
    return ProbeResult(f"{host}:{port}", tuple(checks))
