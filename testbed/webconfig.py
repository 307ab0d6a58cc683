"""A web config file for the exporter's listener (exporter.webconfig): TLS from a private CA and one basic-auth
user, with what a scraper needs to reach it (the CA, the user, a password file). The drill's pipeline uses it so
that vmagent scrapes the exporter over TLS with basic auth, as in production."""

from __future__ import annotations

import base64
import secrets
import ssl
from pathlib import Path

import bcrypt
import yaml

from testbed.kube.pki import CertificateAuthority


def bcrypt_hash(password: str, cost: int = 10) -> str:
    """A bcrypt hash as `htpasswd -nBC COST` writes it ($2y$)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode().replace("$2b$", "$2y$", 1)


class WebConfigFiles:
    """Writes `web-config.yml`, the CA and server certificate for 127.0.0.1, and the scraper's password file."""

    def __init__(self, directory: Path, user: str = "vmagent") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority(directory / "ca", "honeydue-exporter-listener-ca")
        server = self.ca.issue("listener", "honeydue-exporter", ips=("127.0.0.1",), dns=("localhost",), server=True)
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.password_file = directory / "scrape-password"
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(self.password)
        self.path = directory / "web-config.yml"
        self.path.write_text(yaml.safe_dump({
            "tls_server_config": {"cert_file": str(server.cert), "key_file": str(server.key)},
            "basic_auth_users": {user: bcrypt_hash(self.password)},
        }))

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def auth_header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
