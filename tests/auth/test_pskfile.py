"""The PSK file of ``serve --psk-file`` (R42, R44, R45): lines ``IDENTITY HEXKEY``."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capif8sec.auth.pskfile import PskFileError, load_psk_file
from capif8sec.auth.stores import KeyEncryptionKey, MemoryStore, SqliteStore
from capif8sec.errors import UsageError

K1 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
K3 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 16 bytes: the R42 floor
NOW = dt.datetime.now(dt.UTC)


def load(text: str | bytes) -> list[tuple[bytes, bytes]]:
    return [(c.identity, c.key) for c in load_psk_file(text, ccf_identity="ccf.example")]


def refusal(text: str | bytes | Path) -> PskFileError:
    with pytest.raises(PskFileError) as info:
        load_psk_file(text, ccf_identity="ccf.example")
    return info.value


def test_a_well_formed_file() -> None:
    text = (
        "\ufeff# ROF identity   key\n"
        "\n"
        "rof-1.example.com  " + K1 + "\r\n"
        "   \t\n"
        "\trof-2\t\t" + K2.upper() + "   # the second ROF\n"
        "  # an indented comment\n"
        "röf-3 " + K3
    )
    creds = load_psk_file(text, ccf_identity="ccf.example")
    assert [(c.identity, c.key, c.ccf_identity) for c in creds] == [
        (b"rof-1.example.com", bytes.fromhex(K1), "ccf.example"),
        (b"rof-2", bytes.fromhex(K2), "ccf.example"),
        ("röf-3".encode(), bytes.fromhex(K3), "ccf.example"),
    ]


def test_paths_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "psk.txt"
    path.write_bytes(f"rof-1 {K1}\n".encode())
    assert load_psk_file(path, ccf_identity="c")[0].identity == b"rof-1"
    assert load(f"rof-1 {K1}".encode()) == [(b"rof-1", bytes.fromhex(K1))]
    assert load("") == [] and load("# nothing\n\n") == []
    err = refusal(tmp_path / "missing.txt")
    assert err.line is None and "cannot read" in str(err)


def test_r45_identities_are_exact_bytes() -> None:
    creds = load(f"rof-1 {K1}\nROF-1 {K2}\nrof-1\u00a0 {K3}\n")
    assert [identity for identity, _ in creds] == [b"rof-1", b"ROF-1", b"rof-1\xc2\xa0"]


def test_r42_short_keys_are_refused_with_the_line_number() -> None:
    short = "0123456789abcdef0123456789abcd"  # 15 bytes
    err = refusal(f"# header\nrof-1 {K1}\nrof-2 {short}\n")
    assert err.line == 3 and str(err).startswith("line 3:") and "R42" in str(err)
    assert short not in str(err) and short.upper() not in str(err)
    assert isinstance(err, UsageError)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (f"rof-1 {K1}\nrof-1 {K2}\n", 2, "line 1"),  # duplicate identity
        (f"rof-1 {K1}\nrof-2 {K1.upper()}\n", 2, "R44"),  # one key, two identities
        (f"rof-1 {K1}\n\nrof-1\n", 3, "IDENTITY HEXKEY"),
        (f"rof-1 {K1} extra\n", 1, "IDENTITY HEXKEY"),
        (f"rof-1 {K1[:-1]}\n", 1, "hex"),
        (f"rof-1 {K1[:-1]}g\n", 1, "hex"),
        (f"rof-1 0x{K1}\n", 1, "hex"),
        ("x" * 65536 + f" {K1}\n", 1, "65535"),
        (b"rof-1 " + K1.encode() + b"\nrof-\xff " + K2.encode(), 2, "UTF-8"),
        (f"rof-\udc80 {K1}\n", 1, "Unicode"),
    ],
)
def test_refusals_name_the_line_never_the_key(text: str | bytes, line: int, words: str) -> None:
    err = refusal(text)
    assert err.line == line and str(err).startswith(f"line {line}:") and words in str(err)
    for key in (K1, K2, K1[:-1]):
        assert key not in str(err) and key.upper() not in str(err)


def test_ccf_identity_is_required() -> None:
    with pytest.raises(UsageError):
        load_psk_file(f"rof-1 {K1}", ccf_identity="")


def test_a_loaded_file_goes_into_both_stores(tmp_path: Path) -> None:
    creds = load_psk_file(f"rof-1 {K1}\nrof-2 {K2}\n", ccf_identity="ccf.example")
    memory = MemoryStore()
    memory.add_psks(creds)
    with SqliteStore(tmp_path / "c.db", KeyEncryptionKey.generate()) as sqlite:
        sqlite.add_psks(creds)
        for store in (memory, sqlite):
            assert [c.key for c in store.psk_credentials(b"rof-2", at=NOW)] == [bytes.fromhex(K2)]


_fields = st.one_of(
    st.sampled_from(["rof-1", "ROF-1", "#", "# c", K1, K2, K3, K1[:-2], "zz", "0x00", "\u00a0"]),
    st.text(max_size=12),
)
_lines = st.lists(_fields, max_size=4).map(" ".join)


@settings(max_examples=300, deadline=dt.timedelta(seconds=1))
@given(st.one_of(st.text(max_size=300), st.lists(_lines, max_size=8).map("\n".join)))
def test_fuzz_text_gives_credentials_or_a_typed_error(text: str) -> None:
    try:
        creds = load_psk_file(text, ccf_identity="ccf.example")
    except PskFileError as exc:
        error: PskFileError | None = exc
    else:
        error = None
    if error is not None:
        assert error.line is not None and error.line >= 1 and str(error)
        return
    assert len({c.identity for c in creds}) == len(creds)
    assert len({c.key for c in creds}) == len(creds)
    assert all(len(c.key) >= 16 for c in creds)


@settings(max_examples=200, deadline=dt.timedelta(seconds=1))
@given(st.binary(max_size=300))
def test_fuzz_bytes_gives_credentials_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(PskFileError):
        load_psk_file(data, ccf_identity="ccf.example")
