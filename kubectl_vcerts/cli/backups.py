"""`kubectl vcerts backups list|export|prune NAME`: the backup Secrets `NAME-certs-backup-<unix>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.files import write_private_file
from kubectl_vcerts.cli.operation import NameArgument, check_can_confirm, find
from kubectl_vcerts.cli.options import DryRunOption, OutputFormat, OutputOption, YesOption
from kubectl_vcerts.errors import AbortedError, UsageError
from kubectl_vcerts.rotation.ports import BackupRecord

app = typer.Typer(
    help="List, export and prune the backups kubectl vcerts makes before every change.", no_args_is_help=True
)


def _ports(deps: Deps) -> Any:
    from kubectl_vcerts.kube.rotation import KubeRotationPorts

    return KubeRotationPorts(deps.session(), refresh=lambda vc: find(deps, vc.name))


def backup_document(record: BackupRecord) -> dict[str, Any]:
    """Stable JSON schema of one backup (README: "Output schema")."""
    return {
        "name": record.name,
        "namespace": record.namespace,
        "vcluster": record.vcluster,
        "id": record.name.rsplit("-", 1)[-1],
        "created": timefmt.rfc3339(record.created),
        "operation": record.operation,
        "caFingerprint": record.ca_fingerprint,
        "sourceResourceVersion": record.source_resource_version,
    }


@app.command("list")
def list_command(ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.TABLE) -> None:
    """List the backups of a vCluster, newest first: time, operation, CA fingerprint, name."""
    deps = get_deps(ctx)
    vcluster = find(deps, name)
    records = _ports(deps).list_backups(vcluster)
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        from kubectl_vcerts.cli.render import dump_document

        # a list, not a mapping: dump_document's JSON/YAML without the mapping wrapper
        text = dump_document({"items": [backup_document(r) for r in records]}, output)
        if output is OutputFormat.JSON:
            text = json.dumps(json.loads(text)["items"], indent=2) + "\n"
        else:
            import yaml

            text = yaml.safe_dump([backup_document(r) for r in records], sort_keys=False)
        deps.out.file.write(text)
        deps.out.file.flush()
        return
    if not records:
        deps.err.print(f"No backups of vCluster {vcluster.ref}.", highlight=False)
        return
    rows = [("ID", "CREATED", "OPERATION", "CA FINGERPRINT", "NAME")]
    for record in records:
        fingerprint = record.ca_fingerprint or "-"
        if output is not OutputFormat.WIDE and len(fingerprint) > 23:
            fingerprint = fingerprint[:23] + "…"
        rows.append(
            (
                record.name.rsplit("-", 1)[-1],
                timefmt.seconds_utc(record.created),
                record.operation or "-",
                fingerprint,
                record.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain padded columns like kubectl: never truncated, whatever the terminal width
        line = "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        deps.out.print(line, markup=False, highlight=False, crop=False, overflow="ignore")


@app.command("export")
def export_command(
    ctx: typer.Context,
    name: NameArgument,
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory to write the PKI files into.", file_okay=False)
    ],
    backup: Annotated[str, typer.Option("--backup", help="Backup ID, Secret name or 'latest'.")] = "latest",
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
) -> None:
    """Write a backup into a directory in vCluster's /data/pki layout (files 0600, directories 0700)."""
    from kubectl_vcerts.pki import to_files
    from kubectl_vcerts.rotation.plan import resolve_backup

    deps = get_deps(ctx)
    vcluster = find(deps, name)
    ports = _ports(deps)
    record = resolve_backup(ports.list_backups(vcluster), backup, vcluster=vcluster)
    files = to_files(ports.read_backup(vcluster, record.name).data or {})
    existing = sorted(rel for rel in files if (directory / rel).exists())
    if existing and not force:
        raise UsageError(
            f"{directory} already holds {', '.join(existing[:5])}" + (" …" if len(existing) > 5 else ""),
            hint="pass --force to overwrite, or choose an empty directory",
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for rel, data in sorted(files.items()):
        target = directory / rel
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(target, data, overwrite=True)
    deps.out.print(
        f"Exported {record.name} ({len(files)} files) to {directory}", markup=False, highlight=False
    )


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    name: NameArgument,
    keep: Annotated[int, typer.Option("--keep", help="How many of the newest backups to keep.", min=1)] = 10,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Delete all but the newest --keep backups (never the one an unfinished operation refers to)."""
    from kubectl_vcerts.rotation.plan import select_prunable
    from kubectl_vcerts.rotation.recovery import read_record

    deps = get_deps(ctx)
    check_can_confirm(deps, yes=yes, dry_run=dry_run)
    vcluster = find(deps, name)
    ports = _ports(deps)
    state = ports.read_certs(vcluster)
    record = read_record(state.annotations, where=contract.certs_secret_name(vcluster.name))
    protected = {record.backup} if record is not None else set()
    doomed = select_prunable(ports.list_backups(vcluster), keep=keep, identity=state.identity,
                             protected=frozenset(protected))
    if not doomed:
        deps.out.print(
            f"Nothing to prune: vCluster {vcluster.ref} has at most {keep} backup(s).",
            markup=False,
            highlight=False,
        )
        return
    verb = "Would delete" if dry_run else "Deleting"
    for r in doomed:
        deps.out.print(
            f"{verb} {r.name} ({timefmt.seconds_utc(r.created)}, {r.operation})",
            markup=False,
            highlight=False,
        )
    if dry_run:
        deps.out.print("Dry run: nothing was changed.", markup=False, highlight=False)
        return
    from kubectl_vcerts.cli.render import confirm

    if not confirm(deps, f"Delete {len(doomed)} backup(s)?", yes=yes):
        raise AbortedError("aborted: nothing was deleted")
    for r in doomed:
        ports.delete_backup(vcluster, r.name)
    deps.out.print(f"Deleted {len(doomed)} backup(s); kept the newest {keep}.", markup=False, highlight=False)
