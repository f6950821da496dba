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

{
  [name]: files[name] { metadata+: { annotations+: { 'argocd.argoproj.io/sync-wave': wave(files[name]) } } }
  for name in std.objectFields(files)
} + {
  // `kubectl kustomize compiled/<env>/manifests` builds the environment exactly as Flux does.
  kustomization: {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [name + '.yaml' for name in std.objectFields(files)],
  },
}
