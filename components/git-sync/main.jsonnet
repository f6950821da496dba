// The Git server's trusted host keys (public data), so SSH host checking is never switched off:
// read by git-sync, or in dags.mode bundle by the Git DAG bundle's connection (known_hosts_file).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local g = a.params.dags.git_sync;

k.files([
  if std.member(['git-sync', 'bundle'], a.params.dags.mode) && g.auth == 'ssh' then
    k.configMap.new(a.names.gitSyncKnownHosts, a.namespace, { known_hosts: std.rstripChars(g.known_hosts, '\n') + '\n' })
    + k.configMap.withLabels(a.labels('git-sync')),
])
