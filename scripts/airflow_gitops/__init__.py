"""Airflow GitOps: tooling around the Kapitan inventory and the compiled manifests."""

__version__ = "0.1.0"
