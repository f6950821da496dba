// `airflow triggerer`: runs deferred tasks' triggers (which may import code from the DAG folder).
// In dags.mode bundle it gets no DAGs: Airflow 3.3's triggerer never initializes a DAG bundle, so
// trigger classes come from the image (git credentials go only where a bundle is cloned).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local c = a.params.triggerer;

local main =
  a.container('triggerer', ['triggerer'], c.resources, ['database', 'fernet-key', 'api-secret-key'])
  // Ready once it serves its logs (port 8794, opened at start-up); alive while its heartbeat is fresh.
  + k.container.withPorts([k.container.containerPort('logs', 8794)])
  + k.container.withProbes(readiness=k.probe.tcp('logs'), liveness=a.jobCheckProbe('TriggererJob'), startup=a.jobStartupProbe('TriggererJob'));

// Deferred KubernetesPodOperator tasks are followed by their trigger here: it reads their pods
// (in this namespace) through the Kubernetes API.
k.files(a.component('triggerer', a.names.triggerer, c, main, needsDags=!a.isBundle, groomLogs=true, apiAccess=true)
        + a.podReader(a.names.triggerer, 'triggerer', deletePods=true))
