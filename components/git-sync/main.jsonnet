// git-sync's trusted host keys (public data), so SSH host checking is never switched off.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local g = a.params.dags.git_sync;

k.files([
  if a.params.dags.mode == 'git-sync' && g.auth == 'ssh' then
    k.configMap.new(a.names.gitSyncKnownHosts, a.namespace, { known_hosts: std.rstripChars(g.known_hosts, '\n') + '\n' })
    + k.configMap.withLabels(a.labels('git-sync')),
])
