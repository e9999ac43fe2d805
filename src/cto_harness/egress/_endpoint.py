"""The admitted model endpoint: what it is, how it is shown, how the provider reaches it."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

FORWARDER_PORT = 18080
"""In-namespace port when the endpoint's own port is privileged (the sandbox has no capabilities)."""


class EndpointError(ValueError):
    """The configured endpoint is not an http(s) URL the proxy can admit."""


@dataclass(frozen=True)
class Endpoint:
    """One admitted endpoint: ``scheme://host:port/path`` (credentials never kept)."""

    scheme: str
    host: str
    port: int
    path: str
    """Base path without a trailing slash ("" for the root)."""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse an http(s) URL; user info and query are refused, not kept.

        Raises:
            EndpointError: not http(s), no host, a bad port, or credentials/query in the URL.
        """
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise EndpointError(f"{redact_url(url)!r} is not a valid URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointError(f"{redact_url(url)!r} is not an http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise EndpointError(f"{redact_url(url)!r} carries credentials; pass keys by name (PASS_ENV) instead")
        if parts.query or parts.fragment:
            raise EndpointError(f"{redact_url(url)!r} has a query or fragment; an endpoint is scheme://host:port/path")
        default = 443 if parts.scheme == "https" else 80
        return cls(scheme=parts.scheme, host=parts.hostname.lower(), port=port or default,
                   path=parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"

    @property
    def tunnelled(self) -> bool:
        """https: the proxy only tunnels (no TLS interception), so calls are not parsed."""
        return self.scheme == "https"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def inner_port(self) -> int:
        """The port the in-namespace forwarder listens on."""
        return self.port if self.port >= 1024 and not self.tunnelled else FORWARDER_PORT

    def inner_url(self, port: int) -> str:
        """What the provider is configured with: the same path on ``127.0.0.1:port``."""
        return f"http://127.0.0.1:{port}{self.path}"

    def admits_path(self, path: str) -> bool:
        """Requests must stay under the endpoint's base path."""
        if not path.startswith("/") or "/../" in path + "/" or "/./" in path + "/":
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def redact_url(url: str) -> str:
    """``url`` without user info and query values (for evidence and error messages)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "[unparseable url]"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if parts.username is not None or parts.password is not None:
        netloc = "[redacted]@" + netloc
    query = "&".join(f"{k}=[redacted]" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
