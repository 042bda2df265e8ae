"""vcerts platform hook: recycles the NodeClaims of VirtualClusterInstances after a CA change.

Imports kubectl_vcerts.{kube, errors, contract, rotation.recycle*}; never kubectl_vcerts.cli, typer or rich.
"""
