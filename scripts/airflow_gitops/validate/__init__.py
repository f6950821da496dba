"""`airflow-gitops validate`: one command that says, per environment, whether what is about to be
pushed is correct, secure and up to date, and why not. One module per check."""

from .runner import CHECK_NAMES, Report, validate

__all__ = ["CHECK_NAMES", "Report", "validate"]
