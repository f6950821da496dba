// Shared volumes: task logs and DAGs on ReadWriteMany claims, when those modes are chosen.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;

// Data that must outlive a removal from Git: neither GitOps engine deletes these claims when
// they disappear from compiled/ or when the whole environment is removed (delete them by hand
// when really meant: README, "Remove an environment").
local keep = k.pvc.withAnnotations(a.keepOnRemoval);

k.files([
  if p.logs.persistence == 'pvc' then
    k.pvc.new(a.names.logsPvc, a.namespace, p.logs.pvc.size, ['ReadWriteMany'], p.logs.pvc.storage_class)
    + k.pvc.withLabels(a.labels('logs'))
    + keep,
  if p.dags.mode == 'pvc' && p.dags.pvc.create then
    k.pvc.new(p.dags.pvc.claim_name, a.namespace, p.dags.pvc.size, ['ReadWriteMany'], p.dags.pvc.storage_class)
    + k.pvc.withLabels(a.labels('dags'))
    + keep,
])
