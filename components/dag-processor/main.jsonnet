// `airflow dag-processor`: parses DAG files (standalone, required by Airflow 3).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local c = a.params.dag_processor;

local main =
  a.container('dag-processor', ['dag-processor'], c.resources, ['database', 'fernet-key'])
  // No port to probe: ready and alive while its heartbeat in the database is fresh (each check
  // starts an `airflow` process, so readiness is checked as seldom as liveness).
  + k.container.withProbes(readiness=a.jobCheckProbe('DagProcessorJob'), liveness=a.jobCheckProbe('DagProcessorJob', periodSeconds=120),
                           startup=a.jobStartupProbe('DagProcessorJob'));

k.files(a.component('dag-processor', a.names.dagProcessor, c, main, needsDags=true, groomLogs=true))
