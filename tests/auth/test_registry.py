"""The authenticator registry: built-ins, in-process registration, entry-point plugins.

The example plugin package in examples/hwtoken-plugin is installed with pip (into a temporary
directory put on sys.path) and discovered through its entry point, like any third-party plugin.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from capif8sec.auth import AuthenticatedPeer, ContextNeeds
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.registry import available, create, load, register, unregister
from capif8sec.errors import AuthenticationFailed, PluginError
from capif8sec.tls import TlsPeer
from capif8sec.tls.binding import ChannelBinding

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "hwtoken-plugin"


def _pip_install(source: Path, target: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("src") / "hwtoken-plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path_factory.mktemp("site")
    _pip_install(source, target)  # a copy: the build leaves nothing in the source tree
    return target


@pytest.fixture
def with_plugin(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(plugin_dir))
    importlib.invalidate_caches()
    yield plugin_dir
    sys.modules.pop("capif8sec_hwtoken", None)


def _fake_package(root: Path, dist: str, module: str, body: str, name: str = "broken") -> Path:
    """A minimal installed distribution (dist-info + module) declaring one entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[capif8sec.authenticators]\n{name} = {module}:Factory\n"
    )
    return root


def test_builtins_are_available_without_importing_plugins() -> None:
    names = available()
    for name in ("certificate", "psk", "psk-in-channel"):
        assert names[name] == "built-in"
    assert isinstance(create("certificate"), CertificateAuthenticator)


def test_installed_plugin_is_discovered_through_its_entry_point(with_plugin: Path) -> None:
    assert "capif8sec_hwtoken" not in sys.modules  # nothing imported by merely listing
    assert available()["hwtoken"].startswith("plugin (capif8sec")
    assert "capif8sec_hwtoken" not in sys.modules
    auth = create("hwtoken", devices={"tok-1": ("rof-1", b"k" * 20)}, clock=lambda: 3000.0)
    assert auth.name == "hwtoken"
    assert auth.needs is ContextNeeds.NOTHING
    assert "capif8sec_hwtoken" in sys.modules  # loaded lazily, by name

    totp = sys.modules["capif8sec_hwtoken"].totp
    peer = TlsPeer(
        "server",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "none",
        None,
        None,
        None,
        None,
        channel_binding=ChannelBinding("tls-server-end-point", b"x" * 32),
    )
    exchange = auth.authenticate(peer)
    code = totp(b"k" * 20, 100)
    assert exchange.receive(f"device=tok-1,otp={code}".encode()) is None  # type: ignore[union-attr]
    result = exchange.result()  # type: ignore[union-attr]
    assert isinstance(result, AuthenticatedPeer)
    assert result.identity == "rof-1"
    replay = auth.authenticate(peer)
    with pytest.raises(AuthenticationFailed):  # the same one-time password again
        replay.receive(f"device=tok-1,otp={code}".encode())  # type: ignore[union-attr]


def test_plugin_that_fails_to_import_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(tmp_path, "bad_plugin", "bad_plugin_mod", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="failed to import") as info:
        create("broken")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_without_the_interface_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(
        tmp_path,
        "odd_plugin",
        "odd_plugin_mod",
        """
        class Factory:
            name = "broken"
            def authenticate(self, peer):
                return None
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="does not satisfy the interface"):
        create("broken")
    sys.modules.pop("odd_plugin_mod", None)


def test_factory_that_raises_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(
        tmp_path,
        "raising_plugin",
        "raising_plugin_mod",
        """
        class Factory:
            def __init__(self, **kw):
                raise ValueError("bad config")
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="could not be created") as info:
        create("broken")
    assert isinstance(info.value.__cause__, ValueError)
    sys.modules.pop("raising_plugin_mod", None)


def test_two_distributions_claiming_one_name_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "class Factory:\n    pass\n"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _fake_package(a, "first_plugin", "first_plugin_mod", body, name="dup")
    _fake_package(b, "second_plugin", "second_plugin_mod", body, name="dup")
    monkeypatch.syspath_prepend(str(a))
    monkeypatch.syspath_prepend(str(b))
    with pytest.raises(PluginError, match="several distributions"):
        load("dup")
    assert "first_plugin_mod" not in sys.modules  # refused before importing either


def test_plugin_claiming_a_builtin_name_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(
        tmp_path, "squatter", "squatter_mod", "class Factory:\n    pass\n", name="certificate"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="built-in"):
        load("certificate")


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(PluginError, match="no authenticator named"):
        create("does-not-exist")


def test_in_process_registration() -> None:
    class Mine:
        name = "mine"
        needs = ContextNeeds.NOTHING

        def authenticate(self, peer: TlsPeer) -> AuthenticatedPeer:
            return AuthenticatedPeer("x", "mine")

    register("mine", Mine)
    try:
        assert isinstance(create("mine"), Mine)
        with pytest.raises(PluginError, match="already registered"):
            register("mine", Mine)
        with pytest.raises(PluginError, match="already registered"):
            register("certificate", Mine)
        register("mine", Mine, replace=True)
    finally:
        unregister("mine")
    with pytest.raises(PluginError):
        register("", Mine)
