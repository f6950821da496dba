"""`airflow-gitops validate`: one command that says, per environment, whether what is about to be
pushed is correct, secure and up to date, and why not. One module per check (see runner.CHECKS).

Nothing is imported here: the CLI builds its parser on every command, including `sync-dags` on
the edit loop's hot path, and the checks' imports (jsonschema, kubernetes-validate) are slow."""
