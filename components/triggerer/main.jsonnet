// `airflow triggerer`: runs deferred tasks' triggers (which may import code from the DAG folder).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local c = a.params.triggerer;

local main =
  a.container('triggerer', ['triggerer'], c.resources)
  + k.container.withProbes(liveness=a.jobCheckProbe('TriggererJob'));

k.files(a.component('triggerer', a.names.triggerer, c, main, needsDags=true))
