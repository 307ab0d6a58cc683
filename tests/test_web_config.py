"""--web.config.file: the listener's TLS and bcrypt basic auth in exporter-toolkit's format, with real clients.

The real exporter serves TLS from a web config file; curl (Debian's, OpenSSL) talks to it: the right password
is let in, a wrong one gets 401; with RequireAndVerifyClientCert a good client certificate is let in and an
expired one, one from another CA and none are refused in the handshake; plain HTTP to the TLS port is refused.
Each refusal is one log line naming the peer and why, never the password or the hash; /healthz and /readyz
need no credentials. A renewed certificate is served to the next connection without a restart. The e2e
pipeline (tests/test_e2e.py) has vmagent scrape the exporter this way (TLS + basic auth).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from pydantic import SecretStr

from testbed.exporter import ExporterProcess
from testbed.kube.pki import CertFiles, CertificateAuthority
from testbed.webconfig import bcrypt_hash

from exporter.config import ConfigError
from exporter.webconfig import BasicAuthUsers, load_web_config
from tests.helpers.servers import require_binary

PASSWORD = "Scrape-Pw-6d2e81"
USER = "vmagent"


class Pki:
    """A CA with the exporter's serving certificate and clients' certificates: good, expired, foreign."""

    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority(directory / "ca", "honeydue-exporter-test-ca")
        self.server = self.ca.issue("server", "honeydue-exporter", ips=("127.0.0.1",), dns=("localhost",), server=True)
        self.client = self.ca.issue("client", "vmagent", client=True)
        self.expired = self.ca.issue("expired", "vmagent", client=True, expired=True)
        self.foreign = CertificateAuthority(directory / "other-ca", "someone-else").issue("foreign", "vmagent",
                                                                                           client=True)

    def client_context(self, cert: CertFiles | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def write_web_config(path: Path, pki: Pki, client_auth: str | None = None, users: bool = True) -> Path:
    tls: dict[str, Any] = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
    if client_auth:
        tls |= {"client_auth_type": client_auth, "client_ca_file": str(pki.ca.cert_path)}
    doc: dict[str, Any] = {"tls_server_config": tls,
                           "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}}}
    if users:
        doc["basic_auth_users"] = {USER: bcrypt_hash(PASSWORD, cost=4)}  # cost 4: fast tests
    path.write_text(yaml.safe_dump(doc))
    return path


def exporter_config(path: Path, **server: Any) -> Path:
    path.write_text(yaml.safe_dump({
        "server": server, "redis": {"enabled": False}, "kubernetes": {"source": "off"},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
    }))
    return path


@pytest.fixture
def tls_exporter(tmp_path: Path, pki: Pki) -> Iterator[ExporterProcess]:
    """TLS + basic auth, the web config given by the flag (after `run`), as vmagent scrapes it in the pipeline."""
    web = write_web_config(tmp_path / "web.yml", pki)
    exporter = ExporterProcess(config_path=exporter_config(tmp_path / "config.yml"), log_path=tmp_path / "exporter.log",
                               args=("--web.config.file", str(web)), ssl_context=pki.client_context(),
                               headers={"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()})
    try:
        exporter.start()
        yield exporter
    finally:
        exporter.stop()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("curl"), "-sS", "--max-time", "10", "-o", "/dev/null",
                           "-w", "%{http_code}", *args], capture_output=True, text=True, timeout=30)


def wait_for_log(exporter: ExporterProcess, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = exporter.logs()
        if text in logs:
            return logs
        time.sleep(0.1)
    raise AssertionError(f"no log line with {text!r}:\n{exporter.logs()}")


def test_curl_tls_and_basic_auth(tls_exporter: ExporterProcess, pki: Pki) -> None:
    url = tls_exporter.url()
    ca = ("--cacert", str(pki.ca.cert_path))
    ok = curl(*ca, "-u", f"{USER}:{PASSWORD}", "-D", "-", url)
    assert ok.returncode == 0 and ok.stdout.endswith("200"), ok
    assert "x-content-type-options: nosniff" in ok.stdout.lower()  # http_server_config.headers
    status, body = tls_exporter.get("/metrics")
    assert status == 200 and b"process_resident_memory_bytes" in body
    wrong = curl(*ca, "-u", f"{USER}:{PASSWORD}x", url)
    assert wrong.returncode == 0 and wrong.stdout == "401", wrong
    unknown = curl(*ca, "-u", f"someone:{PASSWORD}", url)
    assert unknown.stdout == "401", unknown
    assert curl(*ca, url).stdout == "401"
    assert curl(*ca, tls_exporter.url("/")).stdout == "401"  # the status page shows probe errors: closed too
    for open_path in ("/healthz", "/readyz"):  # kubelet probes carry no credentials
        assert curl(*ca, tls_exporter.url(open_path)).stdout == "200"
    # Plain HTTP to the TLS port: no HTTP answer at all, the connection is closed; the server keeps serving.
    plain = curl(tls_exporter.url().replace("https://", "http://"))
    assert plain.returncode != 0 and plain.stdout == "000", plain
    # A client that does not trust the exporter's CA refuses it (the system store does not hold our test CA).
    untrusted = curl(url)
    assert untrusted.returncode == 60, untrusted  # CURLE_PEER_FAILED_VERIFICATION
    assert curl(*ca, "-u", f"{USER}:{PASSWORD}", url).stdout == "200"
    logs = wait_for_log(tls_exporter, "plain HTTP sent to the TLS port")
    assert "credentials refused from 127.0.0.1: wrong credentials" in logs
    hashed = yaml.safe_load(Path(tls_exporter.args[1]).read_text())["basic_auth_users"][USER]
    assert PASSWORD not in logs and hashed not in logs and "Traceback" not in logs
    assert "listening on https://" in logs


def test_client_certificates_refused_in_the_handshake(tmp_path: Path, pki: Pki) -> None:
    """RequireAndVerifyClientCert: the good certificate gets in; expired, foreign and none are refused."""
    web = write_web_config(tmp_path / "web.yml", pki, client_auth="RequireAndVerifyClientCert", users=False)
    exporter = ExporterProcess(config_path=exporter_config(tmp_path / "config.yml", web_config=str(web)),
                               log_path=tmp_path / "exporter.log", ssl_context=pki.client_context(pki.client))
    try:
        exporter.start()
        url = exporter.url()
        ca = ("--cacert", str(pki.ca.cert_path))

        def with_cert(cert: CertFiles | None) -> subprocess.CompletedProcess[str]:
            return curl(*ca, *(("--cert", str(cert.cert), "--key", str(cert.key)) if cert else ()), url)

        good = with_cert(pki.client)
        assert good.returncode == 0 and good.stdout == "200", good
        for name, cert, logged in (("expired", pki.expired, "certificate has expired"),
                                   ("foreign", pki.foreign, "unable to get local issuer certificate"),
                                   ("none", None, "no client certificate")):
            refused = with_cert(cert)
            assert refused.returncode != 0 and refused.stdout == "000", (name, refused)
            wait_for_log(exporter, logged)
        assert with_cert(pki.client).stdout == "200"  # still serving the good client
        logs = exporter.logs()
        assert "client certificate rejected: certificate has expired" in logs
        assert "Traceback" not in logs
    finally:
        exporter.stop()


def test_a_renewed_certificate_is_served_without_a_restart(tls_exporter: ExporterProcess, pki: Pki) -> None:
    def served() -> bytes:
        with socket.create_connection(("127.0.0.1", tls_exporter.port), timeout=5) as raw, \
                pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der

    first = served()
    renewed = pki.ca.issue("server", "honeydue-exporter", ips=("127.0.0.1",), dns=("localhost",), server=True)
    assert renewed.cert == pki.server.cert  # the same files, new content (as cert-manager renews a Secret)
    new = ssl.PEM_cert_to_DER_cert(renewed.cert.read_text())
    assert new != first
    deadline = time.monotonic() + 10
    while served() != new:
        assert time.monotonic() < deadline, "the renewed certificate was never served"
        time.sleep(0.3)
    assert tls_exporter.get("/metrics")[0] == 200
    wait_for_log(tls_exporter, "web config reloaded")


@pytest.mark.parametrize(("doc", "message"), [
    ({"tls_server_config": {"cert_file": "c.pem"}}, "tls_server_config.key_file: Field required"),
    ({"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem", "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}},
     "cipher_suites is not supported by honeydue-exporter"),
    ({"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem", "client_auth_type": "RequireAnyClientCert"}},
     "RequireAnyClientCert accepts unverified certificates"),
    ({"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem", "client_auth_type": "RequireAndVerifyClientCert"}},
     "needs client_ca_file"),
    ({"tls_server_config": {"cert_file": "missing.pem", "key_file": "k.pem"}}, "cannot load cert_file/key_file"),
    ({"basic_auth_users": {"vmagent": "plain-text-password"}}, "is not a bcrypt hash"),
    ({"rate_limit": {"interval": "1s", "burst": 20}}, "rate_limit is not supported"),
    ({"tls_server_confg": {}}, "tls_server_confg: unknown key"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}, "X-Frame-Options must be one of deny"),
])
def test_bad_web_config_is_one_line(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as caught:
        load_web_config(web)
    assert message in str(caught.value) and "\n" not in str(caught.value), caught.value
    assert "plain-text-password" not in str(caught.value)


def test_check_config_loads_the_web_config(tmp_path: Path, pki: Pki) -> None:
    """check-config refuses a broken web config (exit 2) and one that duplicates server.auth's credentials."""
    import sys

    web = write_web_config(tmp_path / "web.yml", pki)
    config = exporter_config(tmp_path / "config.yml")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "exporter", "check-config", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=60)

    good = check("--web.config.file", str(web))
    assert good.returncode == 0, good.stderr
    assert yaml.safe_load(good.stdout)["server"]["web_config"] == str(web)
    pki.server.key.write_text("not a key")
    broken = check("--web.config.file", str(web))
    assert broken.returncode == 2 and "cannot load cert_file/key_file" in broken.stderr, broken.stderr
    both = exporter_config(tmp_path / "both.yml", auth={"token": "t0ken-abc"}, web_config=str(web))
    write_web_config(web, Pki(tmp_path / "pki2"))
    twice = subprocess.run([sys.executable, "-m", "exporter", "--config", str(both), "check-config"],
                           capture_output=True, text=True, timeout=60)
    assert twice.returncode == 2 and "keep one" in twice.stderr, twice.stderr
    assert "t0ken-abc" not in twice.stderr


async def test_basic_auth_users_check_and_remember() -> None:
    users = BasicAuthUsers({USER: SecretStr(bcrypt_hash(PASSWORD, cost=4)),
                            "other": SecretStr(bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode())})  # $2b$ too

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert await users.allows(header(USER, PASSWORD))
    assert await users.allows(header("other", "x"))
    assert not await users.allows(header(USER, "x"))
    assert not await users.allows(header("nobody", PASSWORD))
    assert not await users.allows("Bearer " + PASSWORD)
    assert not await users.allows("Basic !!!")
    # Remembered: scrapes with the right password do not each pay bcrypt; a wrong one always does.
    checks: list[bytes] = []
    real = users._checkpw
    users._checkpw = lambda password, hashed: checks.append(password) or real(password, hashed)  # type: ignore[method-assign]
    assert all(await asyncio.gather(*(users.allows(header(USER, PASSWORD)) for _ in range(50))))
    assert checks == []
    assert not await users.allows(header(USER, "wrong"))
    assert checks == [b"wrong"]
