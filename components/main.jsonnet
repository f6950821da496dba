// Every component of an environment in one evaluation: the inventory is read and checked once
// and the shared libraries are evaluated once per target (one evaluation per component would
// repeat all of that a dozen times). Each component returns no files when its feature is off.
local k = import 'k8s.libsonnet';

local components = [
  import 'namespace/main.jsonnet',
  import 'config/main.jsonnet',
  import 'secrets/main.jsonnet',
  import 'storage/main.jsonnet',
  import 'git-sync/main.jsonnet',
  import 'migrations/main.jsonnet',
  import 'api-server/main.jsonnet',
  import 'scheduler/main.jsonnet',
  import 'dag-processor/main.jsonnet',
  import 'triggerer/main.jsonnet',
  import 'workers/main.jsonnet',
  import 'postgres/main.jsonnet',
  import 'network-policies/main.jsonnet',
];

local files = std.foldl(function(files, component) files + component, components, {});

// Argo CD applies in waves and waits for each to be healthy: the namespace, then config, secrets
// and the bundled database, then the migration Job (healthy once it succeeded), then the
// workloads that wait for migrations anyway. Flux ignores the annotation.
local waves = {
  Namespace: '-3',
  Job: '-1',
  Deployment: '0',
  PodDisruptionBudget: '0',
};
local wave(obj) =
  if std.objectHas(waves, obj.kind) then waves[obj.kind]
  else if obj.kind == 'StatefulSet' || obj.kind == 'Service' && obj.metadata.name == 'airflow-postgres' then '-2'
  else if obj.kind == 'Service' then '0'
  else '-2';

// Three directories, each a kustomization of its own, applied in this order: Flux applies each
// as a separate Kustomization (its `path` is a directory) and waits for one before the next;
// Argo CD reads the top-level kustomization.yaml, which lists all three, and orders by waves.
//   base:       namespace, config, secrets, accounts, RBAC, PVCs and the bundled PostgreSQL
//   migrations: the `airflow db migrate` Job
//   workloads:  Deployments, their Services and PodDisruptionBudgets
local group(obj) =
  if obj.kind == 'Job' then 'migrations'
  else if std.member(['Deployment', 'PodDisruptionBudget'], obj.kind)
          || obj.kind == 'Service' && obj.metadata.name != 'airflow-postgres' then 'workloads'
  else 'base';
local groups = ['base', 'migrations', 'workloads'];

local kustomization(resources) = {
  apiVersion: 'kustomize.config.k8s.io/v1beta1',
  kind: 'Kustomization',
  resources: resources,
};

{
  [group(files[name]) + '/' + name]:
    files[name] { metadata+: { annotations+: { 'argocd.argoproj.io/sync-wave': wave(files[name]) } } }
  for name in std.objectFields(files)
} + {
  [g + '/kustomization']: kustomization([name + '.yaml' for name in std.objectFields(files) if group(files[name]) == g])
  for g in groups
} + {
  // `kubectl kustomize compiled/<env>/manifests` builds the whole environment (what Argo CD applies).
  kustomization: kustomization(groups),
}
