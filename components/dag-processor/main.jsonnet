// `airflow dag-processor`: parses DAG files (standalone, required by Airflow 3).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local c = a.params.dag_processor;

local main =
  a.container('dag-processor', ['dag-processor'], c.resources)
  + k.container.withProbes(liveness=a.jobCheckProbe('DagProcessorJob'));

k.files(a.component('dag-processor', a.names.dagProcessor, c, main, needsDags=true))
