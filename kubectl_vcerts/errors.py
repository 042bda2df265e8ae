"""The one error hierarchy of kubectl vcerts and platform_hook.

Every failure a user can meet is a `VcertsError` with a stable exit code and a hint that says what to
do. The CLI renders them once, as ``kubectl vcerts: error: …``. Messages must never contain key
material: build them from names, never from secret values.

Imports nothing but the standard library, so every layer (pki, rotation, kube, cli, hook) may use it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes. Stable: scripts and cron jobs depend on them."""

    OK = 0
    FAILURE = 1  # unexpected failure (a bug); run with -v for the traceback
    USAGE = 2  # bad flags or flag combination
    # `check` only: what the certificates look like.
    CHECK_EXPIRING = 3  # something expires within --warn-within
    CHECK_EXPIRED = 4  # something is expired, not yet valid, invalid or missing
    NOT_FOUND = 10  # vCluster, secret, backup or other object not found
    UNSUPPORTED = 11  # distro, version or layout we refuse to touch
    NOT_READY = 12  # control plane not Running (use --force), interrupted operation pending, or
    # a restart would roll out a template change staged under OnDelete
    INVALID_PKI = 13  # NAME-certs corrupt or incomplete
    INVALID_INPUT = 14  # a file or value supplied by the user is unusable (e.g. a BYO CA)
    CONFLICT = 15  # someone else changed the object, or holds the lock
    FORBIDDEN = 16  # RBAC denies a verb we need
    UNREACHABLE = 17  # API server unreachable after bounded retries
    TIMEOUT = 18  # the vCluster did not come back in time (rolled back unless --no-rollback)
    ROLLED_BACK = 19  # the operation failed and the previous PKI was put back
    ABORTED = 20  # the user declined the confirmation
    UNTRUSTED = 21  # the API server's certificate failed verification (CA, host name, validity)
    DATA_LOSS = 22  # the restart would delete the virtual cluster's state on an emptyDir
    STAGE_ORDER = 23  # rotate-ca --phase: that phase of a staged rotation is not the one due now


class VcertsError(Exception):
    """Base of every error we expect and explain."""

    exit_code: ExitCode = ExitCode.FAILURE
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return self.message


class UsageError(VcertsError):
    exit_code = ExitCode.USAGE


class NotFoundError(VcertsError):
    exit_code = ExitCode.NOT_FOUND


class UnsupportedError(VcertsError):
    exit_code = ExitCode.UNSUPPORTED


class NotReadyError(VcertsError):
    exit_code = ExitCode.NOT_READY


class InvalidPkiError(VcertsError):
    exit_code = ExitCode.INVALID_PKI


class InvalidInputError(VcertsError):
    exit_code = ExitCode.INVALID_INPUT


class ConflictError(VcertsError):
    exit_code = ExitCode.CONFLICT


class LockHeldError(ConflictError):
    """Another operation holds the per-vCluster lock."""


class ForbiddenError(VcertsError):
    exit_code = ExitCode.FORBIDDEN


class UnauthorizedError(ForbiddenError):
    """HTTP 401: the server did not accept the credentials at all (a client certificate of a CA it does
    not trust, an expired certificate or token). A ForbiddenError, so the exit code is the same."""


class UnreachableError(VcertsError):
    exit_code = ExitCode.UNREACHABLE
    default_hint = "check --kubeconfig/--context and that the API server is up"


class UntrustedServerError(VcertsError):
    """The server's TLS certificate failed verification: never retried, as kubectl never accepts it."""

    exit_code = ExitCode.UNTRUSTED
    default_hint = ("check the server address and certificate-authority(-data) of the context "
                    "(`kubectl config view --minify`); kubectl refuses this server too")


class DataLossError(VcertsError):
    """A restart would delete the state of the virtual cluster (emptyDir); --allow-data-loss allows it."""

    exit_code = ExitCode.DATA_LOSS


class StageOrderError(VcertsError):
    """rotate-ca --phase names a phase that is not the next one of the staged rotation under way."""

    exit_code = ExitCode.STAGE_ORDER


class ApiError(VcertsError):
    """Any other API failure (HTTP 4xx/5xx we do not map more precisely)."""

    exit_code = ExitCode.FAILURE


class OperationTimeoutError(VcertsError):
    exit_code = ExitCode.TIMEOUT


class RolledBackError(VcertsError):
    exit_code = ExitCode.ROLLED_BACK


class AbortedError(VcertsError):
    exit_code = ExitCode.ABORTED
