"""kubectl vcerts: check and rotate vCluster certificates through the host cluster's API."""

__version__ = "0.1.0"
