"""Packaging of kubectl vcerts as a krew plugin: the build of standalone archives and the manifest.

Build-time tooling only: nothing in the kubectl_vcerts package imports this, and this package imports
nothing from kubectl_vcerts (the version is read from the source, not imported).
"""
