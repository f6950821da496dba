// Metrics (parameters.airflow.metrics): with mode statsd, Airflow's processes send StatsD to a
// statsd-exporter that turns Airflow's dotted names into labelled Prometheus metrics, scraped
// through its Service (and a ServiceMonitor with the Prometheus Operator). With mode otel
// Airflow pushes to your collector: only airflow.cfg changes (airflow.libsonnet).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local m = p.metrics;
local s = m.statsd;
local uid = 65534;  // the exporter image's nobody

// Airflow's StatsD names carry DAG, task, pool and file names inside the metric name: each
// rule moves them into labels (statsd_prefix is "airflow"). Names without a rule keep their
// dotted name with dots as underscores (airflow.executor.open_slots -> airflow_executor_open_slots).
local rule(match, name, labels={}) = { match: match, name: name } + (if labels == {} then {} else { labels: labels });
local airflowMappings = [
  rule('airflow.dagrun.dependency-check.*', 'airflow_dagrun_dependency_check', { dag_id: '$1' }),
  rule('airflow.dagrun.duration.success.*', 'airflow_dagrun_duration', { dag_id: '$1', state: 'success' }),
  rule('airflow.dagrun.duration.failed.*', 'airflow_dagrun_duration', { dag_id: '$1', state: 'failed' }),
  rule('airflow.dagrun.schedule_delay.*', 'airflow_dagrun_schedule_delay', { dag_id: '$1' }),
  rule('airflow.dagrun.first_task_scheduling_delay.*', 'airflow_dagrun_first_task_scheduling_delay', { dag_id: '$1' }),
  rule('airflow.dag.*.*.duration', 'airflow_task_duration', { dag_id: '$1', task_id: '$2' }),
  rule('airflow.dag.*.*.queued_duration', 'airflow_task_queued_duration', { dag_id: '$1', task_id: '$2' }),
  rule('airflow.dag.*.*.scheduled_duration', 'airflow_task_scheduled_duration', { dag_id: '$1', task_id: '$2' }),
  rule('airflow.ti.start.*.*', 'airflow_ti_start', { dag_id: '$1', task_id: '$2' }),
  rule('airflow.ti.finish.*.*.*', 'airflow_ti_finish', { dag_id: '$1', task_id: '$2', state: '$3' }),
  rule('airflow.task_removed_from_dag.*', 'airflow_task_removed_from_dag', { dag_id: '$1' }),
  rule('airflow.task_restored_to_dag.*', 'airflow_task_restored_to_dag', { dag_id: '$1' }),
  rule('airflow.task_instance_created_*.*', 'airflow_task_instance_created', { operator: '$1', dag_id: '$2' }),
  rule('airflow.dag_processing.last_duration.*', 'airflow_dag_processing_last_duration', { dag_file: '$1' }),
  rule('airflow.dag_processing.last_run.seconds_ago.*', 'airflow_dag_processing_last_run_seconds_ago', { dag_file: '$1' }),
  rule('airflow.dag_processing.last_num_of_db_queries.*', 'airflow_dag_processing_last_num_of_db_queries', { dag_file: '$1' }),
  rule('airflow.pool.open_slots.*', 'airflow_pool_open_slots', { pool: '$1' }),
  rule('airflow.pool.queued_slots.*', 'airflow_pool_queued_slots', { pool: '$1' }),
  rule('airflow.pool.running_slots.*', 'airflow_pool_running_slots', { pool: '$1' }),
  rule('airflow.pool.deferred_slots.*', 'airflow_pool_deferred_slots', { pool: '$1' }),
  rule('airflow.pool.scheduled_slots.*', 'airflow_pool_scheduled_slots', { pool: '$1' }),
  rule('airflow.pool.starving_tasks.*', 'airflow_pool_starving_tasks', { pool: '$1' }),
  rule('airflow.triggers.running.*', 'airflow_triggers_running', { hostname: '$1' }),
  rule('airflow.triggerer.capacity_left.*', 'airflow_triggerer_capacity_left', { hostname: '$1' }),
];
local mappingsYaml = std.manifestYamlDoc({ mappings: airflowMappings + s.extra_mappings }, indent_array_in_object=true, quote_keys=false) + '\n';

local exporter =
  k.container.new('statsd-exporter', '%s:%s' % [s.image.repository, s.image.tag], p.image.pull_policy)
  + k.container.withArgs([
    '--statsd.mapping-config=/etc/statsd-exporter/mappings.yml',
    '--statsd.listen-udp=:9125',
    '--statsd.listen-tcp=:9125',
    '--web.listen-address=:9102',
  ])
  + k.container.withPorts([
    { name: 'statsd-udp', containerPort: 9125, protocol: 'UDP' },
    k.container.containerPort('statsd-tcp', 9125),
    k.container.containerPort('metrics', 9102),
  ])
  + k.container.withProbes(
    readiness=k.probe.http('/metrics', 'metrics', periodSeconds=15),
    liveness=k.probe.http('/metrics', 'metrics', periodSeconds=30),
  )
  + k.container.withVolumeMounts([k.container.mount('config', '/etc/statsd-exporter', readOnly=true)])
  + k.container.withResources(s.resources)
  + k.container.withRestrictedSecurityContext(uid, uid, true);

local pod =
  k.podSpec.new([exporter], a.names.statsd)
  + k.podSpec.withVolumes([k.volume.configMap('config', a.names.statsd)])
  + k.podSpec.withSecurityContext(uid, uid, uid)
  + a.placement({}, a.selectorLabels('statsd'));

local serviceMonitor = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'ServiceMonitor',
  metadata: { name: a.names.statsd, namespace: a.namespace, labels: a.labels('statsd') + m.service_monitor.labels },
  spec: {
    selector: { matchLabels: a.selectorLabels('statsd') },
    endpoints: [{ port: 'metrics', path: '/metrics', interval: m.service_monitor.interval }],
  },
};

k.files(if m.mode != 'statsd' then [] else [
  k.configMap.new(a.names.statsd, a.namespace, { 'mappings.yml': mappingsYaml }) + k.configMap.withLabels(a.labels('statsd')),
  k.deployment.new(a.names.statsd, a.namespace, 1, a.selectorLabels('statsd'), pod)
  + k.deployment.withLabels(a.labels('statsd'))
  + k.deployment.withPodLabels(a.labels('statsd'))
  + k.deployment.withPodAnnotations({ 'checksum/mappings': std.md5(mappingsYaml) }),
  k.service.new(a.names.statsd, a.namespace, a.selectorLabels('statsd'), [
    { name: 'statsd-udp', port: 9125, targetPort: 'statsd-udp', protocol: 'UDP' },
    k.service.port('statsd-tcp', 9125),
    k.service.port('metrics', 9102),
  ])
  + k.service.withLabels(a.labels('statsd')),
  k.serviceAccount.new(a.names.statsd, a.namespace) + k.serviceAccount.withLabels(a.labels('statsd')),
] + (if m.service_monitor.enabled then [serviceMonitor] else []))
