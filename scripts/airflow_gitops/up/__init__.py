"""`airflow-gitops up`: an environment's compiled pods run on one Linux machine as the kubelet would
run them (issue 15, being built): each container under bubblewrap with a read-only root and only
its declared volumes, a network namespace (one address) per pod, cgroup memory and CPU limits, and
local stand-ins for the images (a virtualenv for apache/airflow, Debian's PostgreSQL and Redis, an
emulation of git-sync)."""
