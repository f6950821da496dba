// Metrics (parameters.airflow.metrics): with mode statsd, Airflow's processes send StatsD to a
// statsd-exporter that turns Airflow's tagged metrics into labelled Prometheus metrics, scraped
// through its Service (and a ServiceMonitor with the Prometheus Operator). With mode otel
// Airflow pushes to your collector: only airflow.cfg changes (airflow.libsonnet).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local m = p.metrics;
local s = m.statsd;
local uid = 65534;  // the exporter image's nobody

// Airflow 3 tags its metrics (dag_id, task_id, state, pool...) and sends the tags in InfluxDB's
// line format (airflow.libsonnet sets statsd_influxdb_enabled, and turns off the legacy names
// that carried them inside the metric name): the exporter makes them Prometheus labels by
// itself (airflow.ti.finish,dag_id=etl,... -> airflow_ti_finish{dag_id="etl",...}). Mapping
// rules of your own (renames, histograms) go in metrics.statsd.extra_mappings.
local mappingsYaml = std.manifestYamlDoc({ mappings: s.extra_mappings }, indent_array_in_object=true, quote_keys=false) + '\n';

local exporter =
  k.container.new('statsd-exporter', s.image.repository + ':' + s.image.tag, p.image.pull_policy)
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

k.files([
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
