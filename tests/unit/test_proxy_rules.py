"""Which proxy a request to the API server takes (kube/proxy.py): kubectl's rules, Go's
http.ProxyFromEnvironment for the environment, a kubeconfig proxy-url for everything."""

from __future__ import annotations

import pytest

from kubectl_vcerts.kube.proxy import proxy_for

PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(
    ("server", "proxy_url", "environ", "expected"),
    [
        pytest.param("https://api.example:6443", None, {}, None, id="no proxy anywhere connects directly"),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTPS_PROXY": PROXY},
            PROXY,
            id="HTTPS_PROXY serves https servers",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"https_proxy": PROXY},
            PROXY,
            id="https_proxy in lower case too",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTP_PROXY": PROXY},
            None,
            id="HTTP_PROXY does not serve https servers",
        ),
        pytest.param(
            "http://api.example:8080",
            None,
            {"HTTP_PROXY": PROXY, "HTTPS_PROXY": "http://other:1"},
            PROXY,
            id="HTTP_PROXY serves plain http servers",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTPS_PROXY": "proxy.example:3128"},
            PROXY,
            id="a proxy without a scheme is http",
        ),
        pytest.param(
            "https://127.0.0.1:6443",
            None,
            {"HTTPS_PROXY": PROXY},
            None,
            id="loopback addresses are never proxied from the environment",
        ),
        pytest.param("https://localhost:6443", None, {"HTTPS_PROXY": PROXY}, None, id="neither is localhost"),
        pytest.param("https://[::1]:6443", None, {"HTTPS_PROXY": PROXY}, None, id="nor the IPv6 loopback"),
        pytest.param(
            "https://127.0.0.1:6443",
            "http://127.0.0.1:9",
            {"NO_PROXY": "*"},
            "http://127.0.0.1:9",
            id="a kubeconfig proxy-url is used for every host, whatever NO_PROXY says",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "*"},
            None,
            id="NO_PROXY=* turns the environment's proxy off",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "a.b, api.example"},
            None,
            id="NO_PROXY names the host",
        ),
        pytest.param(
            "https://x.api.example:6443",
            None,
            {"HTTPS_PROXY": PROXY, "no_proxy": "api.example"},
            None,
            id="a NO_PROXY domain covers its subdomains",
        ),
        pytest.param(
            "https://api.example:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": ".api.example"},
            PROXY,
            id="a NO_PROXY domain with a leading dot covers only its subdomains",
        ),
        pytest.param(
            "https://notapi.example:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "api.example"},
            PROXY,
            id="a NO_PROXY domain does not cover names that merely end like it",
        ),
        pytest.param(
            "https://10.1.2.3:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"},
            None,
            id="a NO_PROXY CIDR covers its addresses",
        ),
        pytest.param(
            "https://10.1.2.3:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.1.2.3:443"},
            PROXY,
            id="a NO_PROXY entry with another port does not match",
        ),
        pytest.param(
            "https://10.1.2.3:6443",
            None,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.1.2.3:6443"},
            None,
            id="a NO_PROXY entry with the server's port matches",
        ),
    ],
)
def test_the_proxy_kubectl_would_use(
    server: str, proxy_url: str | None, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(server, proxy_url, environ) == expected
