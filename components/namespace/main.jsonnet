// The environment's namespace, enforcing the "restricted" Pod Security Standard.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

k.files([
  k.namespace.new(a.namespace)
  // Deleting a namespace deletes every claim in it: removing the environment from Git leaves
  // the namespace (and so its data) in place.
  + k.namespace.withAnnotations(a.keepOnRemoval)
  + k.namespace.withLabels(a.labels('namespace') {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/audit': 'restricted',
    'pod-security.kubernetes.io/warn': 'restricted',
  }),
])
