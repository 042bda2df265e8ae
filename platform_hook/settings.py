"""The hook's settings, read once from the environment (and overridden by command-line flags).

Every knob the Deployment sets is an env variable named here; tests set small grace periods and
resync intervals through the same variables. Imports contract, errors and rotation.recycle{,_record} only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from kubectl_vcerts import contract
from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.rotation.recycle import Settings as RecycleSettings
from kubectl_vcerts.rotation.recycle_record import RecreatePolicy


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    label_selector: str = ""
    recreate: RecreatePolicy = RecreatePolicy.MISSING
    grace_seconds: float = 300.0
    poll_seconds: float = 2.0
    resync_seconds: float = 300.0
    watch_seconds: int = 240  # server-side timeout of one watch request
    workers: int = 4
    dry_run: bool = False
    lease_name: str = contract.PLATFORM_HOOK_NAME
    lease_namespace: str = "vcerts-system"
    lease_seconds: int = 15
    renew_seconds: float = 5.0
    identity: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    max_backoff_seconds: float = 300.0

    def recycle(self) -> RecycleSettings:
        return RecycleSettings(policy=self.recreate, grace=timedelta(seconds=self.grace_seconds),
                               poll=self.poll_seconds)


def _number(env: Mapping[str, str], key: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise UsageError(f"{key}={raw!r} is not a number", hint=f"set {key} to seconds, e.g. 30") from exc
    if value < minimum:
        raise UsageError(f"{key}={raw!r} is below {minimum}", hint=f"set {key} to at least {minimum}")
    return value


def _bool(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip().lower() in {"1", "true", "yes", "on"}


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        recreate = RecreatePolicy(env.get("HOOK_RECREATE", "missing").strip().lower())
    except ValueError as exc:
        raise UsageError(f"HOOK_RECREATE={env.get('HOOK_RECREATE')!r} is unknown",
                         hint="use missing, always or never") from exc
    namespaces = tuple(n.strip() for n in env.get("HOOK_NAMESPACES", "").split(",") if n.strip())
    identity = env.get("HOOK_IDENTITY") or env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return Settings(
        namespaces=namespaces,
        label_selector=env.get("HOOK_LABEL_SELECTOR", "").strip(),
        recreate=recreate,
        grace_seconds=_number(env, "HOOK_GRACE_SECONDS", 300.0),
        poll_seconds=_number(env, "HOOK_POLL_SECONDS", 2.0, minimum=0.05),
        resync_seconds=_number(env, "HOOK_RESYNC_SECONDS", 300.0, minimum=1.0),
        watch_seconds=int(_number(env, "HOOK_WATCH_SECONDS", 240.0, minimum=1.0)),
        workers=int(_number(env, "HOOK_WORKERS", 4.0, minimum=1.0)),
        dry_run=_bool(env, "HOOK_DRY_RUN"),
        lease_name=env.get("HOOK_LEASE_NAME") or contract.PLATFORM_HOOK_NAME,
        lease_namespace=env.get("HOOK_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or "vcerts-system",
        lease_seconds=int(_number(env, "HOOK_LEASE_SECONDS", 15.0, minimum=1.0)),
        renew_seconds=_number(env, "HOOK_RENEW_SECONDS", 5.0, minimum=0.1),
        identity=identity,
        http_host=env.get("HOOK_HTTP_HOST") or "127.0.0.1",
        http_port=int(_number(env, "HOOK_HTTP_PORT", 8080.0)),
        log_level=(env.get("HOOK_LOG_LEVEL") or "INFO").upper(),
        max_backoff_seconds=_number(env, "HOOK_MAX_BACKOFF_SECONDS", 300.0, minimum=0.1),
    )
