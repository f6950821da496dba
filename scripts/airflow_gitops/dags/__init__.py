"""DAG delivery: check DAG sources, mirror them into the Git source git-sync reads, publish."""
