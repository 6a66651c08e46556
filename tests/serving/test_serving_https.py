"""`pulse serve` over HTTPS (Forage's page is HTTPS: browsers block plain-HTTP fetches)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from pisa_pulse.bench import endpoints
from pisa_pulse.core.cluster import free_port

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


def test_serves_forage_over_https(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    db = tmp_path / "pulse.db"
    endpoints.write_sample(db, countries=10)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pisa_pulse.cli.serve", "serve",
         "--sqlite", str(db), "--port", str(port),
         "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        reply = error = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                reply = httpx.get(
                    f"https://127.0.0.1:{port}/forage/submissions",
                    verify=ssl.create_default_context(cafile=str(cert)),
                )
                break
            except httpx.HTTPError as exc:
                error = exc
                time.sleep(0.2)
        assert reply is not None and reply.status_code == 200, error
        assert type(reply.json()["count"]) is int
        assert reply.headers["access-control-allow-origin"] == "*"
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/forage/submissions", timeout=2).json()
    finally:
        server.terminate()
        server.wait(10)
