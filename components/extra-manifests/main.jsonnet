// parameters.airflow.extra_manifests: objects of your own (a ConfigMap your sidecar reads, a
// SecretStore, a PrometheusRule...) compiled, validated and applied with the environment.
// Namespaced objects land in the environment's namespace unless they name one; an object that
// would replace one of ours is refused (change ours through its parameters instead).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;

local place(obj) =
  obj {
    metadata+: {
      labels+: a.labels('extra'),
    } + (if std.member(k.clusterScopedKinds, obj.kind) || std.objectHas(obj.metadata, 'namespace') then {} else { namespace: a.namespace }),
  };

{
  [k.fileName(place(p.extra_manifests[key]))]: place(p.extra_manifests[key])
  for key in std.objectFields(p.extra_manifests)
}
