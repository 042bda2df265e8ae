"""Translate Kubernetes client failures into our own errors, at the gateway boundary.

`api_call` wraps one request: it retries what is transient (bounded, with backoff and jitter) and
turns everything else into a `VcertsError` that names the verb and the object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubectl_vcerts.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
    UntrustedServerError,
    VcertsError,
)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Target:
    """What a request acts on, for messages: verb, resource (plural, with group), name, namespace."""

    verb: str
    resource: str
    name: str | None = None
    namespace: str | None = None

    def describe(self) -> str:
        obj = self.resource if self.name is None else f"{self.resource}/{self.name}"
        return f"{obj} in namespace {self.namespace}" if self.namespace else obj


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or "").strip()
        except (ValueError, AttributeError):
            return ""
    return ""


# OpenSSL's verification codes (X509_V_ERR_*), in kubectl's words (Go's x509 errors).
_UNKNOWN_AUTHORITY = frozenset({2, 18, 19, 20, 21})
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = frozenset({62, 64})


def _verification_error(exc: BaseException) -> Any:
    """The ssl.SSLCertVerificationError behind `exc` (urllib3 wraps it twice), if any."""
    import ssl

    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return None


def tls_failure(exc: BaseException, target: Target) -> UntrustedServerError | None:
    """An `UntrustedServerError` when `exc` is, or was caused by, a failed verification of the API
    server's certificate; the same for the light client and the kubernetes client."""
    error = _verification_error(exc)
    if error is None:
        return None
    code = getattr(error, "verify_code", None)
    if code in _UNKNOWN_AUTHORITY:
        why = "certificate signed by unknown authority"
    elif code == _EXPIRED:
        why = "certificate has expired"
    elif code == _NOT_YET_VALID:
        why = "certificate is not yet valid"
    elif code in _NAME_MISMATCH:
        why = "certificate is not valid for the server's host name"
    else:
        why = str(getattr(error, "verify_message", "") or "verification failed")
    return UntrustedServerError(
        f"cannot {target.verb} {target.describe()}: the API server's certificate is not trusted ({why})")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: network failures and 429/5xx. Never 4xx client errors, conflicts, or a server
    certificate that failed verification."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if _verification_error(exc) is not None:
        return False
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUS or exc.status == 0
    return isinstance(exc, Urllib3Error | ConnectionError | TimeoutError)


def error_for_status(status: int, detail: str, target: Target, *, reason: str = "") -> VcertsError:
    """Our error for an HTTP status from the API server (both clients): names the object and the verb.
    `detail` is the Status message the server sent; `reason` the HTTP reason phrase, if any."""
    what = target.describe()
    if status == 404:
        return NotFoundError(f"{what} not found")
    if status == 403:
        return ForbiddenError(
            f"forbidden: cannot {target.verb} {what}" + (f" ({detail})" if detail else ""),
            hint=f"ask for RBAC permission to {target.verb} {target.resource}"
            + (f" in namespace {target.namespace}" if target.namespace else ""),
        )
    if status == 401:
        return UnauthorizedError(
            f"unauthorized while trying to {target.verb} {what}",
            hint="your credentials were rejected; refresh the kubeconfig",
        )
    if status == 409:
        return ConflictError(
            f"conflict: {what} was changed by someone else while we tried to {target.verb} it",
            hint="nothing was changed by this command; run it again",
        )
    if status in TRANSIENT_STATUS:
        return UnreachableError(f"API server failed to {target.verb} {what}: HTTP {status} {detail}".strip())
    return ApiError(f"cannot {target.verb} {what}: HTTP {status} {detail or reason}".strip())


def translate(exc: BaseException, target: Target) -> VcertsError:
    """Map one client failure to our hierarchy. The result names the object and the verb."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, VcertsError):
        return exc
    if isinstance(exc, ApiException):
        return error_for_status(exc.status, _api_message(exc), target, reason=exc.reason or "")
    untrusted = tls_failure(exc, target)
    if untrusted is not None:
        return untrusted
    if is_transient(exc):
        return UnreachableError(f"cannot reach the API server to {target.verb} {target.describe()}")
    return ApiError(f"cannot {target.verb} {target.describe()}: {type(exc).__name__}")


def api_call(target: Target, fn: Callable[[], T], *, attempts: int = 4, max_wait: float = 4.0,
             sleep: Callable[[float], None] | None = None) -> T:
    """Run one request; retry transient failures a bounded number of times; translate the rest.

    Only call this for idempotent requests or ones guarded by a resourceVersion precondition: a
    retried create that already succeeded comes back as a 409 conflict, which we report, not repeat.
    """
    import tenacity

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_random_exponential(multiplier=0.2, max=max_wait),  # full jitter
        retry=tenacity.retry_if_exception(is_transient),
        reraise=True,
        **kwargs,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        raise translate(exc, target) from exc
