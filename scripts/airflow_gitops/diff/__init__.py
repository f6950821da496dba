"""`airflow-gitops diff`: what a change of compiled/ means, per environment and object.

trees (compiled/ at two states, through Git's plumbing) -> objects (field-level changes, secrets
redacted) -> impact (what it means for Airflow, dangers) -> render (text, Markdown, JSON);
compare ties them together.
"""
