"""Which proxy a request to the API server goes through, by kubectl's rules.

A cluster's `proxy-url` in the kubeconfig is used for every request to that cluster. Otherwise the
environment decides, as Go's `http.ProxyFromEnvironment` does for kubectl: HTTPS_PROXY (or
https_proxy) for https servers, HTTP_PROXY (or http_proxy) for http ones, a value without a scheme
meaning http://; never for `localhost` or a loopback address; never for a host NO_PROXY (or no_proxy)
matches: `*`, an IP address, a CIDR range, or a domain (`example.com` matches it and its subdomains,
`.example.com` only its subdomains), each optionally with `:port`.

Pure: the server URL, the kubeconfig setting and the environment in, a proxy URL or None out.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.upper()) or environ.get(name.lower()) or ""


def _host_port(server: str) -> tuple[str, int]:
    parts = urlsplit(server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.hostname or "").lower(), port


def _no_proxy_matches(entry: str, host: str, port: int) -> bool:
    import ipaddress

    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*":
        return True
    try:
        network = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    entry_host, entry_port = entry, None
    if entry.startswith("[") and "]" in entry:  # [v6]:port
        entry_host, _, rest = entry[1:].partition("]")
        entry_port = rest[1:] if rest.startswith(":") else None
    elif entry.count(":") == 1:
        entry_host, entry_port = entry.split(":")
    if entry_port is not None and entry_port != str(port):
        return False
    try:
        return ipaddress.ip_address(entry_host) == ipaddress.ip_address(host)
    except ValueError:
        pass
    if entry_host.startswith("*."):
        entry_host = entry_host[1:]
    if entry_host.startswith("."):
        return host.endswith(entry_host)
    return host == entry_host or host.endswith("." + entry_host)


def _is_loopback(host: str) -> bool:
    import ipaddress  # only when a proxy is configured: `check` starts without it

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(server: str, proxy_url: str | None, environ: Mapping[str, str]) -> str | None:
    """The proxy URL for requests to `server`, or None to connect directly."""
    if proxy_url:
        return proxy_url
    scheme = urlsplit(server).scheme
    value = _env(environ, "https_proxy" if scheme == "https" else "http_proxy")
    if not value:
        return None
    host, port = _host_port(server)
    if _is_loopback(host):
        return None
    if any(_no_proxy_matches(entry, host, port) for entry in _env(environ, "no_proxy").split(",")):
        return None
    return value if "://" in value else "http://" + value
