"""``capif8sec credentials add-psk|add-password|revoke|list`` (exit codes 0 / 1 / 2)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from pathlib import Path

import pytest

from capif8sec.auth.stores import KeyEncryptionKey, SqliteStore
from capif8sec.cli import main

KEY = "5a" * 16 + "a5" * 16
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def kek_hex(monkeypatch: pytest.MonkeyPatch) -> str:
    value = KeyEncryptionKey.generate()._material.hex()
    monkeypatch.setenv("CAPIF8SEC_KEK", value)
    return value


@pytest.fixture
def db(tmp_path: Path, kek_hex: str) -> str:
    return str(tmp_path / "creds.db")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["credentials", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def open_store(db: str, kek_hex: str) -> SqliteStore:
    return SqliteStore(db, KeyEncryptionKey.from_hex(kek_hex), create=False)


def test_round_trip(capsys: pytest.CaptureFixture[str], db: str, kek_hex: str) -> None:
    code, out, err = run(
        capsys, "add-psk", "--db", db, "--identity", "rof-1", "--ccf", "ccf.example",
        "--key-hex", KEY, "--key-id", "k1",
        "--not-before", "2020-01-01T00:00:00Z", "--not-after", "2999-01-01T00:00:00",
    )  # fmt: skip
    assert code == 0, err
    assert out == "added psk identity=rof-1 ccf=ccf.example key_id=k1\n"
    code, out, err = run(
        capsys, "add-psk", "--db", db, "--identity", "rof-2", "--ccf", "ccf.example", "--generate"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("added psk identity=rof-2 ccf=ccf.example key_id=psk-")
    assert lines[1].startswith("key=") and len(lines) == 2 and "shown once" in err
    generated = bytes.fromhex(lines[1].removeprefix("key="))
    assert len(generated) == 32

    code, out, _ = run(capsys, "list", "--db", db)
    assert code == 0
    assert "rof-1 ccf=ccf.example key_id=k1 not_before=2020-01-01T00:00:00+00:00" in out
    assert "not_after=2999-01-01T00:00:00+00:00 state=active" in out
    assert KEY not in out.lower() and generated.hex() not in out.lower()

    with open_store(db, kek_hex) as store:
        (one,) = store.psk_credentials(b"rof-1", at=NOW)
        (two,) = store.psk_credentials(b"rof-2", at=NOW)
    assert one.key == bytes.fromhex(KEY) and two.key == generated

    code, out, _ = run(capsys, "revoke", "--db", db, "--identity", "rof-1")
    assert (code, out) == (0, "revoked 1 credential\n")
    code, out, err = run(capsys, "revoke", "--db", db, "--identity", "rof-1")
    assert (code, out) == (1, "") and "no active credential" in err
    code, _, _ = run(capsys, "revoke", "--db", db, "--key-id", "no-such-key")
    assert code == 1
    with open_store(db, kek_hex) as store:
        assert store.psk_credentials(b"rof-1", at=NOW) == []

    code, out, _ = run(capsys, "list", "--db", db, "--format", "json")
    rows = json.loads(out)["credentials"]
    assert [(r["identity"], r["state"]) for r in rows] == [
        ("rof-1", "revoked"),
        ("rof-2", "active"),
    ]
    assert KEY not in out.lower() and generated.hex() not in out.lower()


def test_the_key_is_printed_only_when_generated(
    capsys: pytest.CaptureFixture[str], db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code, out, err = run(
        capsys, "add-psk", "--db", db, "--identity", "r", "--ccf", "c", "--key-hex", KEY
    )
    assert code == 0
    assert "key=" not in out
    for text in (out, err, caplog.text):
        assert KEY not in text.lower()


def test_key_from_stdin(
    capsys: pytest.CaptureFixture[str], db: str, kek_hex: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY.upper() + "\n"))
    code, out, _ = run(
        capsys, "add-psk", "--db", db, "--identity", "r", "--ccf", "c", "--key-hex", "-"
    )
    assert code == 0 and KEY not in out.lower()
    with open_store(db, kek_hex) as store:
        assert store.psk_credentials(b"r", at=NOW)[0].key == bytes.fromhex(KEY)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--key-hex", KEY[:30]], "R42"),  # 15 bytes
        (["--key-hex", KEY[:-1]], "hex"),
        (["--key-hex", KEY[:-1] + "x"], "hex"),
        (["--key-hex", KEY, "--not-after", "tomorrow"], "ISO"),
        (["--key-hex", KEY, "--not-before", "2030-01-01", "--not-after", "2029-01-01"], "later"),
    ],
)
def test_unusable_input_is_exit_2_and_never_echoes_the_key(
    capsys: pytest.CaptureFixture[str], db: str, extra: list[str], words: str
) -> None:
    code, out, err = run(capsys, "add-psk", "--db", db, "--identity", "r", "--ccf", "c", *extra)
    assert code == 2 and words in err and out == ""
    assert KEY[:30] not in err.lower() and KEY[:30] not in out.lower()


def test_r44_and_r45_through_the_cli(capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert (
        run(capsys, "add-psk", "--db", db, "--identity", "rof-1", "--ccf", "c", "--key-hex", KEY)[0]
        == 0
    )
    code, _, err = run(
        capsys, "add-psk", "--db", db, "--identity", "rof-2", "--ccf", "c", "--key-hex", KEY
    )
    assert code == 2 and "R44" in err and KEY not in err.lower()
    other = "11" * 32
    code, _, _ = run(
        capsys, "add-psk", "--db", db, "--identity", "ROF-1", "--ccf", "c", "--key-hex", other
    )
    assert code == 0
    code, out, _ = run(capsys, "revoke", "--db", db, "--identity", "ROF-1")
    assert (code, out) == (0, "revoked 1 credential\n")  # rof-1 untouched
    assert "rof-1 ccf=c key_id=psk-" in run(capsys, "list", "--db", db)[1]


def test_add_password(
    capsys: pytest.CaptureFixture[str], db: str, kek_hex: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    code, out, err = run(
        capsys, "add-password", "--db", db, "--username", "alice", "--password-stdin",
        "--iterations", "4096", "--key-id", "pw-alice",
    )  # fmt: skip
    assert code == 0, err
    assert out == "added password username=alice key_id=pw-alice iterations=4096\n"
    with open_store(db, kek_hex) as store:
        verifier = store.scram_verifier("alice", at=NOW)
    assert verifier is not None and verifier.iterations == 4096
    listing = run(capsys, "list", "--db", db)[1]
    assert "password alice iterations=4096 key_id=pw-alice state=active" in listing
    raw = b"".join(p.read_bytes() for p in Path(db).parent.glob("creds.db*"))
    assert b"correct horse" not in raw and verifier.stored_key not in raw
    for secret in (verifier.stored_key, verifier.server_key):
        assert secret.hex() not in listing
    assert run(capsys, "revoke", "--db", db, "--username", "alice")[0] == 0
    assert run(capsys, "revoke", "--db", db, "--username", "alice")[0] == 1


def test_add_password_prompts_without_echo(
    capsys: pytest.CaptureFixture[str], db: str, kek_hex: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["s3cret-pass", "s3cret-pass", "one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    argv = ("add-password", "--db", db, "--username", "bob", "--iterations", "4096")
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "s3cret" not in out
    code, _, err = run(capsys, *argv)
    assert code == 2 and "do not match" in err and "one" not in err


@pytest.mark.parametrize(
    ("argv", "stdin", "words"),
    [
        (["--iterations", "4095", "--password-stdin"], "pw\n", "4096"),
        ([], "pw\n", "--password-stdin"),  # no terminal to prompt on
        (["--password-stdin"], "\n", "empty"),
        (["--password-stdin"], "bad\u0007pw\n", "SASLprep"),
    ],
)
def test_add_password_refusals(
    capsys: pytest.CaptureFixture[str],
    db: str,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    words: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code, _, err = run(capsys, "add-password", "--db", db, "--username", "u", *argv)
    assert code == 2 and words in err
    assert "bad\u0007pw" not in err


def test_kek_problems_are_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "c.db")
    monkeypatch.delenv("CAPIF8SEC_KEK", raising=False)
    code, _, err = run(capsys, "list", "--db", db)
    assert code == 2 and "CAPIF8SEC_KEK" in err
    kek = KeyEncryptionKey.generate()._material.hex()
    kek_file = tmp_path / "kek.hex"
    kek_file.write_text(kek + "\n")
    args = ("--db", db, "--kek-file", str(kek_file))
    assert run(capsys, "add-psk", *args, "--identity", "r", "--ccf", "c", "--generate")[0] == 0
    assert run(capsys, "list", *args)[0] == 0
    monkeypatch.setenv("CAPIF8SEC_KEK", "ab" * 32)  # the wrong one
    code, _, err = run(capsys, "list", "--db", db)
    assert code == 2 and "does not match" in err and kek not in err and "ab" * 32 not in err
    monkeypatch.setenv("CAPIF8SEC_KEK", kek[:-2])
    code, _, err = run(capsys, "list", "--db", db)
    assert code == 2 and "64 hex digits" in err and kek[:-2] not in err
    code, _, err = run(
        capsys, "list", "--db", str(tmp_path / "missing.db"), "--kek-file", str(kek_file)
    )
    assert code == 2 and "no credential database" in err
    assert not (tmp_path / "missing.db").exists()


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str], db: str) -> None:
    for argv in (
        ["add-psk", "--db", db, "--identity", "r", "--ccf", "c"],  # no key source
        ["add-psk", "--db", db, "--identity", "r", "--ccf", "c", "--generate", "--key-hex", KEY],
        ["revoke", "--db", db],
        ["revoke", "--db", db, "--identity", "a", "--username", "b"],
        ["list"],
        [],
    ):
        with pytest.raises(SystemExit) as info:
            main(["credentials", *argv])
        assert info.value.code == 2
    assert KEY not in capsys.readouterr().err.lower()


def test_empty_list(capsys: pytest.CaptureFixture[str], db: str, kek_hex: str) -> None:
    SqliteStore(db, KeyEncryptionKey.from_hex(kek_hex)).close()
    assert run(capsys, "list", "--db", db) == (0, "no credentials\n", "")
    assert json.loads(run(capsys, "list", "--db", db, "--format", "json")[1]) == {"credentials": []}
