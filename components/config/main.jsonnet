// airflow.cfg, rendered from parameters.airflow.config and the derived settings.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

k.files([
  k.configMap.new(a.names.config, a.namespace, { 'airflow.cfg': a.airflowCfg })
  + k.configMap.withLabels(a.labels('config')),
])
