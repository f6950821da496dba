// The environment's namespace, enforcing the "restricted" Pod Security Standard.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

k.files([
  k.namespace.new(a.namespace)
  + k.namespace.withLabels(a.labels('namespace') {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/audit': 'restricted',
    'pod-security.kubernetes.io/warn': 'restricted',
  }),
])
