"""The one gateway to the Kubernetes API.

Only this package imports `kubernetes` and `tenacity`. Functions here are small, verb-named, take
keyword-only arguments and raise `kubectl_vcerts.errors.VcertsError` subclasses, never ApiException.
"""
