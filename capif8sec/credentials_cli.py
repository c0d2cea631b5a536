"""``capif8sec credentials``: manage the ROF credential database (PSKs, SCRAM verifiers).

::

    capif8sec credentials add-psk --db FILE --identity ID --ccf CCF_ID (--key-hex HEX | --generate)
                                  [--key-id ID] [--not-before ISO] [--not-after ISO]
    capif8sec credentials add-password --db FILE --username USER [--password-stdin]
                                  [--iterations N] [--key-id ID]
                                  [--not-before ISO] [--not-after ISO]
    capif8sec credentials revoke --db FILE (--identity ID | --key-id ID | --username USER)
    capif8sec credentials list --db FILE [--format text|json]

The database is a :class:`~capif8sec.auth.stores.SqliteStore`; its key-encryption key (64 hex
digits) comes from ``--kek-file FILE`` or the ``CAPIF8SEC_KEK`` environment variable.  Keys and
passwords are never printed, with one exception: the key made by ``add-psk --generate``, shown
once because there is no other way to learn it.  ``--key-hex -`` reads the key from stdin (so
it does not show in the process list).

Exit codes: 0 done, 1 nothing matched (``revoke``), 2 usage or unusable input (bad option, wrong
KEK, short key, a key already registered, ...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hmac
import json
import os
import secrets
import sys
from collections.abc import Callable
from typing import Any, TextIO

from capif8sec.auth.credentials import PskCredential, Validity
from capif8sec.auth.scram import DEFAULT_ITERATIONS, MIN_ITERATIONS, make_verifier
from capif8sec.auth.stores import (
    CredentialStoreError,
    KeyEncryptionKey,
    SqliteStore,
    display_identity,
    parse_hex,
)
from capif8sec.errors import UsageError

__all__ = ["add_subparser", "run"]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2
KEK_ENV = "CAPIF8SEC_KEK"
_GENERATED_KEY_BYTES = 32  # R42 recommends 32


def add_subparser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``credentials`` and its subcommands on the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", required=True, metavar="FILE", help="the credential database")
    common.add_argument(
        "--kek-file",
        metavar="FILE",
        help=f"key-encryption key, 64 hex digits (default: ${KEK_ENV})",
    )
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument(
        "--key-id", metavar="ID", help="a name for this credential (default: made up)"
    )
    window.add_argument("--not-before", metavar="ISO", help="valid from (ISO 8601; no zone: UTC)")
    window.add_argument("--not-after", metavar="ISO", help="valid until (ISO 8601; no zone: UTC)")

    p = sub.add_parser("credentials", help="manage the ROF credential database (PSKs, passwords)")
    csub = p.add_subparsers(dest="credentials_command", required=True, parser_class=type(p))

    c = csub.add_parser("add-psk", parents=[common, window], help="store an external PSK")
    c.add_argument("--identity", required=True, metavar="ID", help="ROF PSK identity (exact bytes)")
    c.add_argument("--ccf", required=True, metavar="CCF_ID", help="the CCF the key is bound to")
    key = c.add_mutually_exclusive_group(required=True)
    key.add_argument("--key-hex", metavar="HEX", help="the key in hex ('-': read it from stdin)")
    key.add_argument("--generate", action="store_true", help="make a 32-byte key; printed once")

    c = csub.add_parser("add-password", parents=[common, window], help="store a SCRAM verifier")
    c.add_argument("--username", required=True, metavar="USER")
    c.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    c.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}, at least {MIN_ITERATIONS})",
    )

    c = csub.add_parser("revoke", parents=[common], help="revoke credentials (effective at once)")
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--identity", metavar="ID", help="every PSK of this ROF identity")
    which.add_argument("--key-id", metavar="ID", help="one credential")
    which.add_argument("--username", metavar="USER", help="every verifier of this user")

    c = csub.add_parser("list", parents=[common], help="list credentials (never secrets)")
    c.add_argument("--format", choices=["text", "json"], default="text")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run a ``credentials`` subcommand; store errors become usage errors (exit 2)."""
    commands: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
        "add-psk": _add_psk,
        "add-password": _add_password,
        "revoke": _revoke,
        "list": _list,
    }
    try:
        return commands[args.credentials_command](args, out)
    except CredentialStoreError as exc:
        raise UsageError(str(exc)) from None


# ----------------------------------------------------------------------------- commands


def _store(args: argparse.Namespace, *, create: bool) -> SqliteStore:
    if args.kek_file:
        kek = KeyEncryptionKey.from_file(args.kek_file)
    elif os.environ.get(KEK_ENV):
        kek = KeyEncryptionKey.from_hex(os.environ[KEK_ENV])
    else:
        raise UsageError(f"no key-encryption key: give --kek-file FILE or set {KEK_ENV}")
    return SqliteStore(args.db, kek, create=create)


def _validity(args: argparse.Namespace) -> Validity:
    return Validity(_when(args.not_before, "--not-before"), _when(args.not_after, "--not-after"))


def _when(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 date and time") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _add_psk(args: argparse.Namespace, out: TextIO) -> int:
    if args.generate:
        key = secrets.token_bytes(_GENERATED_KEY_BYTES)
    else:
        text = sys.stdin.readline() if args.key_hex == "-" else args.key_hex
        parsed = parse_hex(text.strip())
        if parsed is None:
            raise UsageError("--key-hex: the key must be an even number of hex digits")
        key = parsed
    cred = PskCredential(
        os.fsencode(args.identity), key, args.ccf, args.key_id or "", _validity(args)
    )
    with _store(args, create=True) as store:
        stored = store.add_psk(cred)
    out.write(
        f"added psk identity={display_identity(stored.identity)} ccf={stored.ccf_identity} "
        f"key_id={stored.key_id}\n"
    )
    if args.generate:
        print("capif8sec: the generated key is shown once; store it now", file=sys.stderr)
        out.write(f"key={key.hex()}\n")
    return EXIT_OK


def _add_password(args: argparse.Namespace, out: TextIO) -> int:
    if args.iterations < MIN_ITERATIONS:  # checked before the prompt, and by make_verifier
        raise UsageError(f"--iterations must be at least {MIN_ITERATIONS} (R53)")
    validity = _validity(args)
    store = _store(args, create=True)  # before the prompt: a wrong KEK fails first
    with store:
        password = _read_password(args.password_stdin)
        verifier = make_verifier(
            args.username, password, iterations=args.iterations, validity=validity
        )
        stored = store.add_scram(verifier, key_id=args.key_id or "")
    out.write(
        f"added password username={display_identity(stored.identity)} key_id={stored.key_id} "
        f"iterations={stored.iterations}\n"
    )
    return EXIT_OK


def _revoke(args: argparse.Namespace, out: TextIO) -> int:
    identity = os.fsencode(args.identity) if args.identity is not None else None
    with _store(args, create=False) as store:
        count = store.revoke(identity=identity, key_id=args.key_id, username=args.username)
    if count == 0:
        print("capif8sec: no active credential matched", file=sys.stderr)
        return EXIT_NOT_FOUND
    out.write(f"revoked {count} credential{'s' if count != 1 else ''}\n")
    return EXIT_OK


def _list(args: argparse.Namespace, out: TextIO) -> int:
    with _store(args, create=False) as store:
        entries = store.list()
    now = dt.datetime.now(dt.UTC)
    rows = [e.as_dict(now) for e in entries]
    if args.format == "json":
        json.dump({"credentials": rows}, out, indent=2)
        out.write("\n")
        return EXIT_OK
    for row in rows:
        extra = f" ccf={row['ccf_identity']}" if row["ccf_identity"] is not None else ""
        if row["iterations"] is not None:
            extra += f" iterations={row['iterations']}"
        window = "".join(
            f" {name}={row[name]}"
            for name in ("not_before", "not_after", "revoked_at")
            if row[name] is not None
        )
        out.write(
            f"{row['method']:8} {row['identity']}{extra} key_id={row['key_id']}{window}"
            f" state={row['state']}\n"
        )
    if not rows:
        out.write("no credentials\n")
    return EXIT_OK


# ----------------------------------------------------------------------------- passwords


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to prompt for the password: use --password-stdin")
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Repeat password: ")
        if not hmac.compare_digest(password.encode("utf-8"), again.encode("utf-8")):
            raise UsageError("the passwords do not match")
    if not password:
        raise UsageError("the password is empty")
    return password
