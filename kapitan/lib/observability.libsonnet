// Where Airflow's metrics and task logs go (parameters.airflow.metrics, parameters.airflow.logs):
// the airflow.cfg sections that say so, and the environment and mounts that carry credentials.
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';

local p = e.params;
local names = e.names;
local ns = e.namespace;

// Metrics go to the bundled statsd-exporter, or to an OpenTelemetry collector.
local metricsConfig =
  local m = p.metrics;
  if m.mode == 'statsd' then {
    metrics: {
      statsd_on: 'True', statsd_host: names.statsd + '.' + ns + '.svc.cluster.local', statsd_port: 9125, statsd_prefix: 'airflow',
      // Tags as InfluxDB-style fields, which the exporter turns into labels; not also the legacy
      // names with the tags inside them (one series per DAG and task).
      statsd_influxdb_enabled: 'True', legacy_names_on: 'False',
    },
  } else if m.mode == 'otel' then {
    // The collector's address goes in the standard OTEL_* variables (otelEnv): Airflow 3.2
    // deprecated [metrics] otel_host and otel_port in their favour.
    metrics: { otel_on: 'True', otel_prefix: 'airflow' },
  } + (if m.otel.traces then { traces: { otel_on: 'True' } } else {})
  else {};

local otelEnv =
  local o = p.metrics.otel;
  if p.metrics.mode != 'otel' then [] else [
    k.container.envValue('OTEL_EXPORTER_OTLP_ENDPOINT', '%s://%s:%d' % [if o.ssl_active then 'https' else 'http', o.host, o.port]),
    k.container.envValue('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobuf'),
    k.container.envValue('OTEL_SERVICE_NAME', 'airflow-' + e.env),
  ];

// Remote task logs: object storage (the connection finds credentials the way the cloud SDK
// does: workload identity, or the mounted credentials file) or a search engine.
local remote = p.logs.remote;
local remoteConnId = std.get(remote, 'conn_id', '');
// Elasticsearch or OpenSearch: the host URL without its port, and the port (the scheme's when
// the URL names none).
local logStore =
  if !std.member(['elasticsearch', 'opensearch'], remote.provider) then null
  else
    local parts = std.split(remote.host, ':');
    {
      origin: parts[0] + ':' + parts[1],
      port: if std.length(parts) > 2 then std.parseInt(std.split(parts[2], '/')[0]) else { https: 443, http: 80 }[parts[0]],
    };

local remoteLoggingConfig =
  if remote.provider == 's3' || remote.provider == 'gcs' then {
    logging: {
      remote_logging: 'True',
      remote_base_log_folder: remote.base_folder,
      remote_log_conn_id: if remoteConnId != '' then remoteConnId else { s3: 'aws_default', gcs: 'google_cloud_default' }[remote.provider],
    },
  } else if remote.provider == 'elasticsearch' then {
    logging: { remote_logging: 'True' },
    // Tasks write JSON lines to stdout for the cluster's log shipper; the UI reads them back.
    elasticsearch: { host: remote.host, write_stdout: 'True', json_format: 'True' },
  } else if remote.provider == 'opensearch' then {
    // Airflow needs the port on its own (it fails without); username and password come from
    // the credentials Secret's files (remoteCredentials).
    logging: { remote_logging: 'True' },
    opensearch: { host: logStore.origin, port: logStore.port, write_stdout: 'True', json_format: 'True' },
  } else {};

// Credentials of remote logging, as the cloud SDKs read them (none with workload identity).
local remoteCredentials = {
  secret: std.get(remote, 'credentials_secret', ''),
  dir: '/opt/airflow/remote-logging',
  // Elasticsearch takes credentials only inside [elasticsearch] host, which Airflow cannot read
  // from a file: it has no credentials Secret.
  enabled: self.secret != '' && std.member(['s3', 'gcs', 'opensearch'], remote.provider),
  volumes: if self.enabled then [k.volume.secret('remote-logging-credentials', self.secret)] else [],
  mounts: if self.enabled then [k.container.mount('remote-logging-credentials', self.dir, readOnly=true)] else [],
  env:
    if !self.enabled then []
    else if remote.provider == 's3' then [k.container.envValue('AWS_SHARED_CREDENTIALS_FILE', self.dir + '/credentials')]
    else if remote.provider == 'gcs' then [k.container.envValue('GOOGLE_APPLICATION_CREDENTIALS', self.dir + '/key.json')]
    else [
      k.container.envValue('AIRFLOW__OPENSEARCH__USERNAME_CMD', 'cat %s/username' % self.dir),
      k.container.envValue('AIRFLOW__OPENSEARCH__PASSWORD_CMD', 'cat %s/password' % self.dir),
    ],
};

{
  // airflow.cfg sections (config.libsonnet merges them).
  configSections: metricsConfig + remoteLoggingConfig,
  otelEnv: otelEnv,
  logStore: logStore,
  remoteCredentials: remoteCredentials,
}
