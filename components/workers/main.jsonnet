// KubernetesExecutor worker pods: the pod template the scheduler reads, and their ServiceAccount.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

k.files(
  if a.isKubernetesExecutor then [
    k.configMap.new(a.names.podTemplate, a.namespace, { 'pod_template.yaml': a.podTemplateYaml })
    + k.configMap.withLabels(a.labels('worker')),
    a.serviceAccount(a.names.worker, 'worker', a.params.workers.automount_service_account_token),
  ] else []
)
