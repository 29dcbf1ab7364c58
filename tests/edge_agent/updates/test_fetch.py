"""Fetching a bundle for an update: from a folder on the device or a real HTTP(S) server, with a
size cap, TLS verification on, and no other scheme."""

from __future__ import annotations

import functools
import http.server
import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.bundle import MANIFEST_FILE, MODEL_FILE
from edge_agent.errors import BundleError
from edge_agent.updates.fetch import fetch
from tests.conftest import REPO_ROOT
from tests.pki import make_pki

BUNDLE = REPO_ROOT / "models/vibration-fault"
MB = 2**20


@contextmanager
def serving(folder: Path, tls: Path | None = None) -> Iterator[str]:
    """A real HTTP server (HTTPS with `tls`'s server certificate) on a free port for `folder`."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *_a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server.pem", tls / "server.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}/bundle"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(BUNDLE, root / "bundle")
    return root


def test_http_download_copies_the_bundle_files(tmp_path: Path, site: Path) -> None:
    """Test a download from a real HTTP server: manifest and model arrive byte for byte, the
    missing optional signature is skipped."""
    staging = tmp_path / "staging"
    staging.mkdir()
    with serving(site) as url:
        fetch(url, staging, 64 * MB, 10.0)
    for name in (MANIFEST_FILE, MODEL_FILE):
        assert (staging / name).read_bytes() == (BUNDLE / name).read_bytes()


def test_size_cap_missing_file_and_other_schemes_are_refused(tmp_path: Path, site: Path) -> None:
    """Test that a file over the cap, a missing model and a file:// or ftp:// source are refused
    with one sentence, and a missing folder on the device is named."""
    staging = tmp_path / "staging"
    staging.mkdir()
    with serving(site) as url:
        with pytest.raises(BundleError, match="larger than the 1000 byte cap"):
            fetch(url, staging, 1000, 10.0)
        (site / "bundle" / MODEL_FILE).unlink()
        with pytest.raises(BundleError, match="HTTP 404"):
            fetch(url, staging, 64 * MB, 10.0)
    for source in (f"file://{BUNDLE}", "ftp://host/bundle"):
        with pytest.raises(BundleError, match="only a folder on the device or an http"):
            fetch(source, staging, 64 * MB, 10.0)
    with pytest.raises(BundleError, match="not found on the device"):
        fetch(str(tmp_path / "nowhere"), staging, 64 * MB, 10.0)


def test_https_with_an_unknown_certificate_authority_is_refused(tmp_path: Path, site: Path) -> None:
    """Test that TLS verification is on: a server whose certificate comes from a CA the system
    does not trust is refused, and nothing is written."""
    pki = make_pki(tmp_path / "pki")
    staging = tmp_path / "staging"
    staging.mkdir()
    with serving(site, tls=pki) as url, pytest.raises(BundleError, match="CERTIFICATE_VERIFY"):
        fetch(url, staging, 64 * MB, 10.0)
    assert not any(staging.iterdir())
