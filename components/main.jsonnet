// Every component of an environment in one evaluation: the inventory is read and checked once
// and the shared libraries are evaluated once per target (one evaluation per component would
// repeat all of that a dozen times). Components of optional features are listed with the
// condition that turns them on, here only.
local a = import 'airflow.libsonnet';
local inv = import 'inventory.libsonnet';
local k = import 'k8s.libsonnet';

// go-jsonnet parses a file only when its import is evaluated, and parsing costs about 0.2 ms per
// KB for every target: components of features that are off are not imported at all.
local p = a.params;
local uses(feature, component) = if feature then component else {};
local components = [
  import 'namespace/main.jsonnet',
  import 'config/main.jsonnet',
  import 'secrets/main.jsonnet',
  import 'storage/main.jsonnet',
  import 'git-sync/main.jsonnet',
  import 'migrations/main.jsonnet',
  import 'api-server/main.jsonnet',
  uses(!a.isSimpleAuth, import 'auth/main.jsonnet'),
  import 'scheduler/main.jsonnet',
  import 'dag-processor/main.jsonnet',
  import 'triggerer/main.jsonnet',
  import 'workers/main.jsonnet',
  uses(p.database.mode == 'bundled', import 'postgres/main.jsonnet'),
  uses(p.database.pgbouncer.enabled, import 'pgbouncer/main.jsonnet'),
  uses(a.isCeleryExecutor, import 'celery/main.jsonnet'),
  uses(p.metrics.mode == 'statsd', import 'metrics/main.jsonnet'),
  import 'housekeeping/main.jsonnet',
  uses(p.connections != {} || p.variables != {} || p.pools != {}, import 'airflow-objects/main.jsonnet'),
  import 'network-policies/main.jsonnet',
];
local extraManifests = uses(p.extra_manifests != {}, import 'extra-manifests/main.jsonnet');

// One flat object (a chain of `+` would make every later lookup walk all the components).
local ours = { [name]: component[name] for component in components for name in std.objectFields(component) };
// An extra manifest must not replace an object of ours.
local clash = [name for name in std.objectFields(extraManifests) if std.objectHas(ours, name)];
local files =
  if clash == [] then ours + extraManifests
  else error 'invalid inventory: %s: parameters.airflow.extra_manifests: %s is an object Airflow GitOps already compiles; change it through its parameters instead' % [inv.targetFile, clash[0]];

// Three directories, each a kustomization of its own, applied in this order: Flux applies each
// as a separate Kustomization (its `path` is a directory) and waits for one before the next;
// Argo CD reads the top-level kustomization.yaml, which lists all three, and orders by waves.
//   base:       namespace, config, secrets, accounts, RBAC, PVCs, NetworkPolicies and the
//               services Airflow depends on (bundled PostgreSQL, PgBouncer, Redis, statsd-exporter)
//   migrations: the `airflow db migrate` Job
//   workloads:  Airflow's own workloads, their Services, budgets and autoscalers, routes, the
//               housekeeping CronJobs and the Job applying connections, variables and pools
local componentOf(obj) = std.get(std.get(obj.metadata, 'labels', {}), 'app.kubernetes.io/component', '');
local dependencies = ['postgres', 'redis', 'pgbouncer', 'statsd'];
local workloadKinds = [
  'Deployment', 'StatefulSet', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'Job', 'CronJob',
  'ScaledObject', 'TriggerAuthentication', 'Ingress', 'HTTPRoute', 'ServiceMonitor',
];
local group(obj) =
  if obj.kind == 'Job' && componentOf(obj) == 'db-migrations' then 'migrations'
  else if std.member(workloadKinds, obj.kind) && !std.member(dependencies, componentOf(obj)) then 'workloads'
  else 'base';

// Argo CD applies in waves and waits for each to be healthy: the namespace, then the base, then
// the migration Job (healthy once it succeeded), then the workloads that wait for migrations
// anyway, and last the Job applying connections, variables and pools (it needs the migrated
// database). Flux ignores the annotation.
// Claims go with the workloads that mount them: a WaitForFirstConsumer class binds a claim only
// once a pod using it is scheduled, and Argo CD waits for a Pending claim (Progressing) before
// the next wave, so a claim in an earlier wave than its first consumer never binds. The
// migration Job mounts no claim.
local wave(obj) =
  if obj.kind == 'Namespace' then '-3'
  else if obj.kind == 'PersistentVolumeClaim' then '0'
  else
    local g = group(obj);
    if g == 'base' then '-2'
    else if g == 'migrations' then '-1'
    else if obj.kind == 'Job' then '1'
    else '0';
local groups = ['base', 'migrations', 'workloads'];

local kustomization(resources) = {
  apiVersion: 'kustomize.config.k8s.io/v1beta1',
  kind: 'Kustomization',
  resources: resources,
};

local names = std.objectFields(files);
local groupOf = { [name]: group(files[name]) for name in names };

{
  [groupOf[name] + '/' + name]:
    files[name] { metadata+: { annotations+: { 'argocd.argoproj.io/sync-wave': wave(files[name]) } } }
  for name in names
} + {
  [g + '/kustomization']: kustomization([name + '.yaml' for name in names if groupOf[name] == g])
  for g in groups
} + {
  // `kubectl kustomize compiled/<env>/manifests` builds the whole environment (what Argo CD applies).
  kustomization: kustomization(groups),
}
