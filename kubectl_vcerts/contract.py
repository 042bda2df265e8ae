"""Names shared by the plugin, the platform hook and vCluster itself.

Anything another program reads or writes (annotation and label keys, secret names, API groups) is
spelled here once. Sources for the vCluster names: loft-sh/vcluster (see the README's references).
Imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib

# --- vCluster (host cluster) --------------------------------------------------------------------
VCLUSTER_APP_LABEL = "app"
VCLUSTER_APP_VALUE = "vcluster"
VCLUSTER_SELECTOR = "app=vcluster"  # pkg/cli/find: VirtualClusterSelector
RELEASE_LABEL = "release"
VCLUSTER_NAME_LABEL = "vcluster-name"  # on NAME-certs and vc-NAME (>= v0.24)
ETCD_APP_VALUE = "vcluster-etcd"  # deployed etcd StatefulSet NAME-etcd
SYNCER_CONTAINER = "syncer"
PAUSED_ANNOTATION = "loft.sh/paused"
RESTORING_ANNOTATION = "loft.sh/restoring"  # left by an interrupted `vcluster certs rotate`
PAUSED_REPLICAS_ANNOTATION = "loft.sh/paused-replicas"
PAUSED_DATE_ANNOTATION = "loft.sh/paused-date"
SLEEP_MODE_LABEL = "loft.sh/sleep-mode"
MIGRATED_FROM_K3S_ANNOTATION = "vcluster.loft.sh/migrated-from-k3s"
SLEEP_TYPE_ANNOTATION = "sleepmode.loft.sh/sleep-type"  # on vc-config-NAME: "Sleeping (workloads only)"
SERVICE_CIDR_ANNOTATION = "vcluster.loft.sh/service-cidr"  # on the Service NAME: the detected CIDR
STORE_ANNOTATION = "vcluster.loft.sh/store"  # on vc-config-NAME: backing-store type
# pod-template annotation vCluster's cert watcher sets to roll the workload out (pkg/certs/watcher.go):
# the plugin rolls a Deployment out with the same key, so the template carries one such annotation
CERT_ROTATION_AT_ANNOTATION = "vcluster.loft.sh/cert-rotation-at"
CONFIG_SECRET_KEY = "config.yaml"  # noqa: S105 - the one key of vc-config-NAME, not a secret
VCLUSTER_CERTS_SELECTOR = "app=vcluster"  # NAME-certs (>= v0.24), vc-NAME and vc-config-NAME carry it


def certs_secret_name(vcluster: str) -> str:
    return f"{vcluster}-certs"


def kubeconfig_secret_name(vcluster: str) -> str:
    return f"vc-{vcluster}"


def config_secret_name(vcluster: str) -> str:
    return f"vc-config-{vcluster}"


def etcd_statefulset_name(vcluster: str) -> str:
    return f"{vcluster}-etcd"


def safe_concat_name(*parts: str) -> str:
    """vCluster's translate.SafeConcatName: the parts joined by "-"; past 63 characters, the first 52,
    "-" and 10 hex digits of the SHA-256 of the whole, with ".-" made "-"."""
    full = "-".join(parts)
    if len(full.encode()) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return (full.encode()[:52].decode(errors="ignore") + "-" + digest).replace(".-", "-")


def vcluster_rotation_lease_name(vcluster: str) -> str:
    """vCluster's own cert-watcher Lease (pkg/certs/watcher.go), named the way it names it: the
    watcher only takes it with HA (highAvailability.replicas > 1)."""
    return safe_concat_name("vcluster", vcluster, "cert-rotation")


# --- kubectl vcerts (host cluster) --------------------------------------------------------------
TOOL_NAME = "kubectl-vcerts"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
BACKUP_LABEL = "vcerts.io/backup"  # "true" on every backup secret
BACKUP_OPERATION_ANNOTATION = "vcerts.io/operation"  # rotate | rotate-ca | restore
BACKUP_SOURCE_RV_ANNOTATION = "vcerts.io/source-resource-version"
BACKUP_CA_FINGERPRINT_ANNOTATION = "vcerts.io/ca-fingerprint"
BACKUP_CREATED_ANNOTATION = "vcerts.io/created-at"
# Which vCluster a backup was taken from: the uid of NAME-certs' owner (the Service vCluster sets as
# owner), else of NAME-certs itself. A vCluster recreated under the same name has another one.
BACKUP_IDENTITY_ANNOTATION = "vcerts.io/vcluster-uid"
# Operation value of the backup a rollback takes of the PKI it replaces (the one that failed); such
# backups are kept for inspection but never chosen by `restore --backup latest`.
ROLLED_BACK_OPERATION = "rolled-back"
# On NAME-certs while an operation is under way: JSON record of the operation (crash recovery).
OPERATION_ANNOTATION = "vcerts.io/operation-in-progress"
# When kubectl vcerts last wrote NAME-certs: pods started before it still run the certificates from before.
WRITTEN_AT_ANNOTATION = "vcerts.io/written-at"


def backup_secret_name(vcluster: str, unix_time: int) -> str:
    return f"{vcluster}-certs-backup-{unix_time}"


def lock_lease_name(vcluster: str) -> str:
    return f"vcerts-{vcluster}"


# --- vCluster Platform (platform cluster) -------------------------------------------------------
MANAGEMENT_GROUP = "management.loft.sh"
MANAGEMENT_VERSION = "v1"
VCI_PLURAL = "virtualclusterinstances"
VCI_KIND = "VirtualClusterInstance"
NODECLAIM_PLURAL = "nodeclaims"
NODECLAIM_KIND = "NodeClaim"
CA_ROTATED_ANNOTATION = "vcerts.io/ca-rotated"  # RFC 3339 UTC time of the CA change
CA_FINGERPRINT_ANNOTATION = "vcerts.io/ca-fingerprint"  # sha256:<hex> of the new CA certificate
NODECLAIMS_RECYCLED_ANNOTATION = "vcerts.io/nodeclaims-recycled"  # = the ca-rotated value handled
# Durable record of the claims being recycled, kept on the instance until the recycle completes.
RECYCLE_RECORD_ANNOTATION = "vcerts.io/nodeclaims-record"
# On a NodeClaim the recycle recreated from its record: the uid of the claim it replaces (idempotency).
RECREATED_FROM_ANNOTATION = "vcerts.io/recreated-from"
PLATFORM_HOOK_NAME = "vcerts-platform-hook"  # Event source component, Lease name, manifests
NODECLAIM_VCLUSTER_FIELD = "vClusterRef"  # spec field of a NodeClaim naming its instance

# --- private nodes (virtual cluster) ------------------------------------------------------------
TOKEN_LABEL = "vcluster.loft.sh/token"  # noqa: S105 - a label key, not a secret
TOKEN_NODE_TYPE_LABEL = "vcluster.loft.sh/token-node-type"  # noqa: S105
