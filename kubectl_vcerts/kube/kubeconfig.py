"""The user's kubeconfig, read by kubectl's rules (client-go's clientcmd loading rules), in one place.

Which files: `--kubeconfig` alone (it must exist); else every entry of $KUBECONFIG in order (empty
entries and missing files skipped, a file named twice read once); else ~/.kube/config. When none of
them defines anything, the in-cluster service account is used (where there is one).

How they merge: the first file that defines a cluster, user or context of a given name wins, and
later definitions of that name are ignored whole (never merged field by field); `current-context` is
the first non-empty one. An empty file is an empty config. A name defined twice in one file is an
error, as in kubectl. Relative file references (certificate-authority, client-certificate,
client-key, tokenFile, an exec command given as a path) are resolved against the directory of the
file that holds them.

Every reader of the user's kubeconfig goes through here: the light read client (kube/rest.py), the
kubernetes-client session (kube/client.py) and `rotate-ca --update-kubeconfig`. Error messages name
files and entries, never their contents (a kubeconfig holds keys and tokens). Never imports
kubernetes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_vcerts.errors import NotFoundError, UsageError

ENV_VAR = "KUBECONFIG"

# (section, field, keys holding file paths) of the entries that may refer to files.
_PATH_KEYS: Mapping[str, tuple[str, ...]] = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}
_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


@dataclass(frozen=True)
class Named:
    """One cluster, user or context as kubectl uses it: its body (file paths made absolute) and the
    index of the file that defines it."""

    name: str
    body: Mapping[str, Any] = field(repr=False)
    file: int


@dataclass(frozen=True)
class Kubeconfig:
    """The merged view of the user's kubeconfig files."""

    files: tuple[Path, ...]
    documents: tuple[Mapping[str, Any], ...] = field(repr=False)  # as parsed, one per file
    clusters: Mapping[str, Named] = field(repr=False)
    users: Mapping[str, Named] = field(repr=False)
    contexts: Mapping[str, Named] = field(repr=False)
    current_context: str = ""

    @property
    def empty(self) -> bool:
        return not (self.clusters or self.users or self.contexts or self.current_context)

    def label(self) -> str:
        """The files, as messages name them."""
        if len(self.files) == 1:
            return str(self.files[0])
        return "the kubeconfig files " + os.pathsep.join(map(str, self.files))


@dataclass(frozen=True)
class ContextConfig:
    """What one context of the merged kubeconfig says: the chosen context, its cluster and user."""

    context_name: str
    namespace: str | None  # the context's namespace, if it sets one
    cluster: Mapping[str, Any] = field(repr=False)
    user: Mapping[str, Any] = field(repr=False)
    cluster_name: str = ""
    user_name: str = ""

    @property
    def server(self) -> str:
        return str(self.cluster.get("server") or "")

    def as_document(self) -> dict[str, Any]:
        """A one-context kubeconfig with absolute paths, for clients that take a document."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": self.context_name,
            "clusters": [{"name": self.cluster_name, "cluster": dict(self.cluster)}],
            "users": [{"name": self.user_name, "user": dict(self.user)}],
            "contexts": [{"name": self.context_name, "context": {
                "cluster": self.cluster_name, "user": self.user_name,
                **({"namespace": self.namespace} if self.namespace else {})}}],
        }


def kubeconfig_files(
    explicit: str | None,
    env_value: str | None,
    *,
    home: Path,
    exists: Callable[[Path], bool] = Path.exists,
    separator: str = os.pathsep,
) -> list[Path]:
    """The files kubectl reads, in precedence order (see the module docstring). An explicit file is
    returned even when it does not exist: reading it then fails, as kubectl does."""
    if explicit:
        return [Path(explicit)]
    if env_value:
        chain: list[Path] = []
        for entry in env_value.split(separator):
            if entry and Path(entry) not in chain and exists(Path(entry)):
                chain.append(Path(entry))
        return chain
    default = home / ".kube" / "config"
    return [default] if exists(default) else []


def _parse(text: str, path: Path) -> Mapping[str, Any]:
    from kubectl_vcerts import kubeyaml  # kubectl's YAML subset without importing PyYAML

    try:
        return kubeyaml.load_mapping(text)  # an empty file is an empty config to kubectl
    except kubeyaml.YamlError as exc:
        # Never echo the parser's snippet: a kubeconfig line may hold client-key-data.
        what = f"not valid YAML (line {exc.line})" if exc.line else "not a kubeconfig (a YAML mapping)"
        raise UsageError(f"cannot read kubeconfig {path}: {what}",
                         hint="check --kubeconfig/KUBECONFIG points at a kubeconfig file") from None


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def _resolve_paths(section: str, body: Mapping[str, Any], base: Path) -> dict[str, Any]:
    out = dict(body)
    for key in _PATH_KEYS.get(section, ()):
        if key in out:
            out[key] = _absolute(out[key], base)
    exec_ = out.get("exec")
    if section == "users" and isinstance(exec_, Mapping) and os.sep in str(exec_.get("command") or ""):
        # Only a command given as a path is resolved; a bare name is looked up on PATH.
        out["exec"] = {**exec_, "command": _absolute(exec_.get("command"), base)}
    return out


def merge(files: Sequence[Path], documents: Sequence[Mapping[str, Any]]) -> Kubeconfig:
    """Merge parsed documents by kubectl's rules (first definition of a name wins)."""
    merged: dict[str, dict[str, Named]] = {section: {} for section, _ in _SECTIONS}
    current = ""
    for index, (path, doc) in enumerate(zip(files, documents, strict=True)):
        base = path.parent
        for section, body_key in _SECTIONS:
            seen: set[str] = set()
            for item in doc.get(section) or ():
                if not isinstance(item, Mapping):
                    continue
                name = str(item.get("name") or "")
                if name in seen:
                    raise UsageError(f"cannot read kubeconfig {path}: {body_key} {name!r} is defined twice",
                                     hint="remove one of the two definitions (kubectl refuses it too)")
                seen.add(name)
                body = item.get(body_key)
                if name not in merged[section]:
                    merged[section][name] = Named(
                        name, _resolve_paths(section, body if isinstance(body, Mapping) else {}, base), index)
        if not current and isinstance(doc.get("current-context"), str):
            current = doc["current-context"]
    return Kubeconfig(
        files=tuple(files), documents=tuple(documents), clusters=merged["clusters"],
        users=merged["users"], contexts=merged["contexts"], current_context=current,
    )


def read_kubeconfig(files: Sequence[Path], *, read: Callable[[Path], str] = Path.read_text) -> Kubeconfig:
    """Read and merge `files` (from `kubeconfig_files`)."""
    documents = []
    for path in files:
        try:
            text = read(path)
        except FileNotFoundError:
            raise NotFoundError(f"kubeconfig {path} does not exist",
                                hint="check --kubeconfig/KUBECONFIG") from None
        except OSError as exc:
            raise UsageError(f"cannot read kubeconfig {path}: {exc.strerror or exc}",
                             hint="check the file's permissions") from None
        except UnicodeDecodeError:
            raise UsageError(f"cannot read kubeconfig {path}: not a text file",
                             hint="check --kubeconfig/KUBECONFIG points at a kubeconfig file") from None
        documents.append(_parse(text, path))
    return merge(files, documents)


def load_user_kubeconfig(explicit: str | None, *, environ: Mapping[str, str] | None = None,
                         home: Path | None = None) -> Kubeconfig:
    """The merged kubeconfig kubectl would use for `--kubeconfig explicit` in this environment."""
    env = os.environ if environ is None else environ
    files = kubeconfig_files(explicit, env.get(ENV_VAR), home=Path.home() if home is None else home)
    return read_kubeconfig(files)


def select_context(config: Kubeconfig, context: str | None) -> ContextConfig:
    """The context `--context` names, else the current context, with its cluster and user resolved.
    A user that no file defines means no credentials (as in kubectl)."""
    name = context or config.current_context
    if not name:
        raise UsageError(f"no current context in {config.label()}",
                         hint="pass --context, or pick one with `kubectl config use-context NAME`")
    entry = config.contexts.get(name)
    if entry is None:
        raise NotFoundError(f"context {name!r} not found in {config.label()}",
                            hint="list contexts with `kubectl config get-contexts`")
    cluster_name = str(entry.body.get("cluster") or "")
    cluster = config.clusters.get(cluster_name)
    if cluster is None or not cluster.body.get("server"):
        what = f"cluster {cluster_name!r}" if cluster_name else "no cluster"
        raise UsageError(f"context {name!r} names {what}, which has no server in {config.label()}",
                         hint="fix the context or the cluster entry (`kubectl config view`)")
    user_name = str(entry.body.get("user") or "")
    user = config.users.get(user_name)
    namespace = entry.body.get("namespace")
    return ContextConfig(
        context_name=name,
        namespace=str(namespace) if namespace else None,
        cluster=cluster.body,
        user={} if user is None else user.body,
        cluster_name=cluster_name,
        user_name=user_name,
    )
