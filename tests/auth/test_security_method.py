"""TS 29.222 security-method identifiers (R61): exact strings, unknown ones kept opaque."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capif8sec.auth.base import (
    AuthenticatedPeer,
    Method,
    SecurityMethod,
    UnknownSecurityMethod,
    parse_security_method,
    security_method_of,
)
from capif8sec.errors import UsageError


@pytest.mark.parametrize("text", ["PSK", "PKI", "OAUTH"])
def test_the_29222_strings_are_known(text: str) -> None:
    """R61: the enum strings of TS 29.222 map to the known methods."""
    method = parse_security_method(text)
    assert isinstance(method, SecurityMethod) and method.value == text


@pytest.mark.parametrize("text", ["psk", "Pki", "oauth", "PSK ", "TLS_PSK", "PKI2", "CERT"])
def test_other_strings_stay_opaque_and_never_map_to_a_known_method(text: str) -> None:
    """R61: unknown strings are tolerated (forward compatibility), never taken for PSK/PKI."""
    method = parse_security_method(text)
    assert method == UnknownSecurityMethod(text)
    assert not isinstance(method, SecurityMethod)


@pytest.mark.parametrize("bad", [None, 1, b"PSK", "", "x" * 65, "PS\nK", "PSK\x00", "PKÍ"])
def test_malformed_values_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        parse_security_method(bad)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=10), st.integers(), st.none()))
def test_any_input_gives_a_method_or_a_typed_error(value: object) -> None:
    try:
        method = parse_security_method(value)
    except UsageError:
        return
    assert isinstance(method, SecurityMethod | UnknownSecurityMethod)
    if isinstance(method, SecurityMethod):
        assert value in ("PSK", "PKI", "OAUTH")


def test_authentication_methods_map_to_29222_only_where_one_exists() -> None:
    assert security_method_of(Method.CERTIFICATE) is SecurityMethod.PKI
    assert security_method_of(Method.PSK) is SecurityMethod.PSK
    assert security_method_of(Method.PSK_IN_CHANNEL) is SecurityMethod.PSK
    assert security_method_of(Method.PASSWORD) is None  # 29.222 has no password method
    assert security_method_of("hwtoken") is None  # a plugin's method: no guess
    assert AuthenticatedPeer("rof-c", Method.PSK).as_dict()["security_method"] == "PSK"
    assert AuthenticatedPeer("rof-b", Method.PASSWORD).as_dict()["security_method"] is None
