// What every Airflow pod of an environment shares: names, labels, the generated airflow.cfg,
// secrets as Kapitan ref tags, volumes, the migration wait, the git-sync containers and the Git
// DAG bundle's connection.
local k = import 'k8s.libsonnet';
local inv = import 'inventory.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = inv.airflow;
local env = p.environment;
local ns = p.namespace;

// Refs are generated once on first compile (||random) and committed under kapitan/refs;
// compiled/ only ever holds the tag, revealed at apply time.
local ref(name, generator='random:str:43') = '?{base64:targets/%s/%s||%s}' % [env, name, generator];

local paths = {
  home: '/opt/airflow',
  config: '/opt/airflow/airflow.cfg',
  logs: '/opt/airflow/logs',
  dagsMount: '/opt/airflow/dags',
  podTemplates: '/opt/airflow/pod_templates',
  auth: '/opt/airflow/auth',
  // The Secrets' values as files (never environment variables, which every child process,
  // `kubectl describe` and crash reports would see); Airflow reads them with `_CMD` options.
  secrets: '/opt/airflow/secrets',
  passwordsFile: '/opt/airflow/auth/simple_auth_manager_passwords.json',
  // dags.mode bundle with auth ssh: the credentials Secret and the known_hosts ConfigMap.
  gitCredentials: '/opt/airflow/git-credentials',
  gitKnownHosts: '/opt/airflow/git-known-hosts',
};

local names = {
  config: 'airflow-config',
  podTemplate: 'airflow-pod-template',
  secrets: 'airflow-secrets',
  metadataDb: if p.database.mode == 'bundled' then 'airflow-metadata-db' else p.database.external.secret_name,
  metadataDbKey: p.database.external.secret_key,
  adminPasswords: 'airflow-admin-passwords',
  postgres: 'airflow-postgres',
  apiServer: 'airflow-api-server',
  scheduler: 'airflow-scheduler',
  dagProcessor: 'airflow-dag-processor',
  triggerer: 'airflow-triggerer',
  worker: 'airflow-worker',
  gitSyncKnownHosts: 'airflow-git-sync-known-hosts',
  logsPvc: 'airflow-logs',
  celerySecrets: 'airflow-celery',
  celeryWorker: 'airflow-celery-worker',
  flower: 'airflow-flower',
  redis: 'airflow-redis',
  pgbouncer: 'airflow-pgbouncer',
  statsd: 'airflow-statsd',
};

local isBundle = p.dags.mode == 'bundle';

local dagsFolder =
  if p.dags.mode == 'git-sync' then
    std.join('/', [paths.dagsMount, 'repo'] + (if p.dags.git_sync.sub_path == '' then [] else [p.dags.git_sync.sub_path]))
  else if isBundle then
    // Not parsed in bundle mode (the bundle list below replaces the dags-folder bundle): the
    // image's own, empty, DAG folder.
    paths.dagsMount
  else
    std.join('/', [paths.dagsMount] + (if p.dags.pvc.sub_path == '' then [] else [p.dags.pvc.sub_path]));

// dags.mode bundle: Airflow 3's GitDagBundle (apache-airflow-providers-git, in the official image)
// clones dags.git_sync.repo at dags.git_sync.ref itself, in every pod that parses or runs DAGs:
// the dag-processor, the scheduler with the LocalExecutor and KubernetesExecutor worker pods.
// The repository URL reaches Airflow as a connection in an environment variable; credentials
// come from dags.git_sync.credentials_secret, never from Git.
local bundle = {
  local g = p.dags.git_sync,
  name: 'dags',
  connId: 'dags_git',
  // Airflow's default is tempfile.gettempdir()/airflow/dag_bundles: set it so that it cannot
  // move off the /tmp emptyDir (the root filesystem is read-only).
  storagePath: '/tmp/airflow/dag_bundles',
  // How often the bundle fetches: git-sync's period, in whole seconds (at least 1).
  local unit = if std.endsWith(g.period, 'ms') then 'ms' else g.period[std.length(g.period) - 1],
  local amount = std.parseInt(std.substr(g.period, 0, std.length(g.period) - std.length(unit))),
  refreshInterval: std.max(1, if unit == 'ms' then std.ceil(amount / 1000) else amount * { s: 1, m: 60, h: 3600 }[unit]),
  configList: std.manifestJsonMinified([{
    name: $.name,
    classpath: 'airflow.providers.git.bundles.git.GitDagBundle',
    kwargs: {
      git_conn_id: $.connId,
      tracking_ref: g.ref,
      refresh_interval: $.refreshInterval,
    } + (if g.sub_path == '' then {} else { subdir: g.sub_path }),
  }]),
  // GitHook reads host (the URL), login/password (https) and the extras key_file,
  // strict_host_key_checking and known_hosts_file (ssh). Host keys are always checked.
  // Kubernetes expands $(VAR) from variables defined before this one in the same container.
  connection: {
    conn_type: 'git',
    host: g.repo,
    extra: { strict_host_key_checking: 'yes' }
           + (if g.auth == 'ssh' then {
                key_file: paths.gitCredentials + '/ssh',
                known_hosts_file: paths.gitKnownHosts + '/known_hosts',
              } else {}),
  } + (if g.auth == 'https' then { login: '$(DAGS_GIT_USERNAME)', password: '$(DAGS_GIT_PASSWORD)' } else {}),
  env:
    (if g.auth == 'https' then [
       k.container.envSecret('DAGS_GIT_USERNAME', g.credentials_secret, 'GITSYNC_USERNAME'),
       k.container.envSecret('DAGS_GIT_PASSWORD', g.credentials_secret, 'GITSYNC_PASSWORD'),
     ] else [])
    + [k.container.envValue('AIRFLOW_CONN_' + std.asciiUpper($.connId), std.manifestJsonMinified($.connection))],
};

// `executor` names one executor or two (Airflow 3's multiple executors: the first is the default).
local executors = std.split(p.executor, ',');
local isKubernetesExecutor = std.member(executors, 'KubernetesExecutor');
local isCeleryExecutor = std.member(executors, 'CeleryExecutor');
local isLocalExecutor = std.member(executors, 'LocalExecutor');

local image = '%s:%s' % [p.image.repository, p.image.tag];

local apiServerUrl = 'http://%s.%s.svc.cluster.local:%d' % [names.apiServer, ns, p.api_server.service.port];

// Metrics go to the bundled statsd-exporter, or to an OpenTelemetry collector.
local metricsConfig =
  local m = p.metrics;
  if m.mode == 'statsd' then {
    metrics: {
      statsd_on: 'True', statsd_host: '%s.%s.svc.cluster.local' % [names.statsd, ns], statsd_port: 9125, statsd_prefix: 'airflow',
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
    k.container.envValue('OTEL_SERVICE_NAME', 'airflow-' + env),
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

// Settings derived from other parameters; the user's free-form config is merged over them
// (keys that must not be overridden are refused by inventory.libsonnet).
local derivedConfig = {
  core: {
    executor: p.executor,
    dags_folder: dagsFolder,
    execution_api_server_url: apiServerUrl + '/execution/',
    simple_auth_manager_passwords_file: paths.passwordsFile,
  },
  database: { check_migrations: 'True' },
  logging: { base_log_folder: paths.logs },
  // base_url is the address people use (links in alerts, login redirects): only the user knows it.
  api: { workers: p.api_server.workers, port: p.api_server.port }
       + (if p.api_server.base_url == '' then {} else { base_url: p.api_server.base_url }),
  scheduler: { enable_health_check: 'True', scheduler_health_check_server_port: 8974 },
} + (
  if isCeleryExecutor then {
    celery: { worker_concurrency: p.celery.workers.concurrency },
    // Tasks without a queue go to the workers' first queue.
    operators: { default_queue: p.celery.workers.queues[0] },
  } else {}
) + metricsConfig + remoteLoggingConfig + (
  if isBundle then {
    dag_processor: { dag_bundle_config_list: bundle.configList, dag_bundle_storage_path: bundle.storagePath },
  } else {}
) + (
  if isKubernetesExecutor then {
    kubernetes_executor: {
      namespace: ns,
      pod_template_file: paths.podTemplates + '/pod_template.yaml',
      worker_container_repository: p.image.repository,
      worker_container_tag: p.image.tag,
    },
  } else {}
);

local config = std.foldl(
  function(acc, section) acc { [section]+: p.config[section] },
  std.objectFields(p.config),
  derivedConfig
);

local iniValue(v) =
  if std.isBoolean(v) then (if v then 'True' else 'False') else std.toString(v);

// Plain concatenation: go-jsonnet implements `%` formatting in Jsonnet, and it showed up as the
// single largest cost of a compile.
local renderIni(cfg) =
  std.join('\n', [
    std.join('\n', ['[' + section + ']'] + [key + ' = ' + iniValue(cfg[section][key]) for key in std.objectFields(cfg[section])])
    for section in std.objectFields(cfg)
  ]) + '\n';

local airflowCfg = '# Generated by Kapitan from inventory/targets/%s.yml. Do not edit: change the inventory.\n' % env + renderIni(config);

local labels(component) = {
  'app.kubernetes.io/name': 'airflow',
  'app.kubernetes.io/instance': env,
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/part-of': 'airflow',
  'app.kubernetes.io/version': p.version,
  'app.kubernetes.io/managed-by': 'kapitan',
} + p.labels;

local selectorLabels(component) = {
  'app.kubernetes.io/name': 'airflow',
  'app.kubernetes.io/instance': env,
  'app.kubernetes.io/component': component,
};

local secretsData = {
  // random:str draws from the URL-safe base64 alphabet: 43 characters and '=' decode to the
  // 32 bytes a Fernet key needs.
  'fernet-key': ref('fernet_key') + '=',
  'api-secret-key': ref('api_secret_key'),
  'jwt-secret': ref('jwt_secret'),
};

local adminPassword = ref('admin_password', 'random:str:24');

local postgresPassword = ref('postgres_password', 'random:str:32');

// The bundled Redis's password (URL-safe: it is composed into the broker URL) and Flower's.
local celerySecretsData =
  (if p.celery.broker.mode == 'bundled' then { 'redis-password': ref('redis_password', 'random:str:32') } else {})
  + (if p.celery.flower.enabled then { 'flower-password': ref('flower_password', 'random:str:24') } else {});

// Secrets hold single values only; the bundled database's URL is composed when Airflow reads it
// (`sh -c` with the password file), so no Secret mixes a value with text.
local secretFile(name) = paths.secrets + '/' + name;
local readSecret(name) = 'cat ' + secretFile(name);
local db = p.database;
local bundledDb = db.mode == 'bundled';
local pgbouncer = db.pgbouncer.enabled;
local dbUser = if bundledDb then db.bundled.user else db.external.user;
local pgbouncerPort = 6543;
// The database PgBouncer and KEDA connect to.
local upstream =
  if bundledDb then { host: '%s.%s.svc.cluster.local' % [names.postgres, ns], port: 5432, database: db.bundled.database, user: db.bundled.user, sslmode: 'disable' }
  else { host: db.external.host, port: db.external.port, database: db.external.database, user: db.external.user, sslmode: db.external.sslmode };
// A URL around the content of a password file, percent-encoded (an external database's password
// may hold `@`, `/` or `:`), without the file's trailing newline.
local passwordUrlCmd(before, after, file) =
  'python -c "import sys, urllib.parse; sys.stdout.write(sys.argv[1] + urllib.parse.quote(open(sys.argv[3]).read().rstrip(\'\\n\'), safe=\'\') + sys.argv[2])" '
  + std.join(' ', [before, after, secretFile(file)]);
// `prefix` before a URL held whole in a file (the Celery result backend's `db+`).
local prefixedUrlCmd(prefix, file) =
  'python -c "import sys; sys.stdout.write(sys.argv[1] + open(sys.argv[2]).read().rstrip(\'\\n\'))" ' + prefix + ' ' + secretFile(file);
// The command printing the metadata database's SQLAlchemy URL, with `prefix` before it (the
// Celery result backend's `db+`). `direct` bypasses PgBouncer (migrations hold a session lock).
local databaseUrlCmd(prefix='', direct=false) =
  if pgbouncer && !direct then
    passwordUrlCmd(prefix + 'postgresql+psycopg2://' + dbUser + ':', '@%s.%s.svc.cluster.local:%d/%s' % [names.pgbouncer, ns, pgbouncerPort, upstream.database], 'database-password')
  else if bundledDb then
    passwordUrlCmd(prefix + 'postgresql+psycopg2://' + dbUser + ':', '@%s:5432/%s' % [upstream.host, upstream.database], 'database-password')
  else if prefix == '' then readSecret('sql-alchemy-conn')
  else prefixedUrlCmd(prefix, 'sql-alchemy-conn');

local databaseEnv(direct) =
  [k.container.envValue('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', databaseUrlCmd('', direct))]
  + (if isCeleryExecutor then [
       k.container.envValue('AIRFLOW__CELERY__BROKER_URL_CMD',
                            if p.celery.broker.mode == 'bundled' then
                              passwordUrlCmd('redis://:', '@%s.%s.svc.cluster.local:6379/0' % [names.redis, ns], 'redis-password')
                            else readSecret('celery-broker-url')),
       k.container.envValue('AIRFLOW__CELERY__RESULT_BACKEND_CMD', databaseUrlCmd('db+', direct)),
     ] else []);

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

// One read-only volume with every value an Airflow process needs (mode 0440, group fsGroup).
local secretsVolume = {
  name: 'secrets',
  projected: {
    defaultMode: 288,
    sources: [
      { secret: { name: names.secrets, items: [{ key: key, path: key } for key in ['fernet-key', 'api-secret-key', 'jwt-secret']] } },
      { secret: { name: names.metadataDb, items:
        if bundledDb then [{ key: 'password', path: 'database-password' }]
        else [{ key: names.metadataDbKey, path: 'sql-alchemy-conn' }]
             + (if pgbouncer then [{ key: db.external.password_key, path: 'database-password' }] else []) } },
    ] + (
      if !isCeleryExecutor then []
      else if p.celery.broker.mode == 'bundled' then [{ secret: { name: names.celerySecrets, items: [{ key: 'redis-password', path: 'redis-password' }] } }]
      else [{ secret: { name: p.celery.broker.external.secret_name, items: [{ key: p.celery.broker.external.secret_key, path: 'celery-broker-url' }] } }]
    ),
  },
};
local secretsMount = k.container.mount('secrets', paths.secrets, readOnly=true);

local securityContext(readOnly=p.security.read_only_root_filesystem) =
  k.container.withRestrictedSecurityContext(p.security.run_as_user, p.security.run_as_group, readOnly);

// Environment of every container running the Airflow image. The image's entrypoint would poll
// the database before starting anything: the wait-for-migrations init container does that
// where there is a database, and the other containers (worker pods, sidecars) have none.
local processEnv = [
  k.container.envValue('AIRFLOW_HOME', paths.home),
  k.container.envValue('CONNECTION_CHECK_MAX_COUNT', 0),
  k.container.envValue('PYTHONDONTWRITEBYTECODE', 1),
];

// Environment every Airflow process that touches the metadata database gets (built once for
// each way to the database: a function would be re-evaluated for every container).
local buildCoreEnv(direct) = processEnv + databaseEnv(direct) + [
  k.container.envValue('AIRFLOW__CORE__FERNET_KEY_CMD', readSecret('fernet-key')),
  k.container.envValue('AIRFLOW__API__SECRET_KEY_CMD', readSecret('api-secret-key')),
  k.container.envValue('AIRFLOW__API_AUTH__JWT_SECRET_CMD', readSecret('jwt-secret')),
] + remoteCredentials.env + otelEnv;
local pooledCoreEnv = buildCoreEnv(false);
local directCoreEnv = if pgbouncer then buildCoreEnv(true) else pooledCoreEnv;
local coreEnv(direct=false) = if direct then directCoreEnv else pooledCoreEnv;

// airflow.cfg and a writable /tmp: what any Airflow command needs.
local configVolumes = [
  k.volume.configMap('config', names.config, [{ key: 'airflow.cfg', path: 'airflow.cfg' }]),
  k.volume.emptyDir('tmp'),
];
local configMounts = [
  k.container.mount('config', paths.config, readOnly=true, subPath='airflow.cfg'),
  k.container.mount('tmp', '/tmp'),
];

local baseVolumes = configVolumes + [
  if p.logs.persistence == 'pvc' then k.volume.pvc('logs', names.logsPvc) else k.volume.emptyDir('logs'),
] + remoteCredentials.volumes;

local baseMounts = configMounts + [k.container.mount('logs', paths.logs)] + remoteCredentials.mounts;

// The git-sync credentials Secret and known_hosts ConfigMap (auth https credentials reach the
// bundle's connection through secretKeyRef instead of a volume).
local gitAuthVolumes(g) =
  (if g.auth == 'none' then [] else [k.volume.secret('git-sync-credentials', g.credentials_secret)])
  + (if g.auth == 'ssh' then [k.volume.configMap('git-sync-known-hosts', names.gitSyncKnownHosts)] else []);

local dagsVolumes =
  if p.dags.mode == 'git-sync' then
    [k.volume.emptyDir('dags')] + gitAuthVolumes(p.dags.git_sync)
  else if isBundle then
    (if p.dags.git_sync.auth == 'ssh' then gitAuthVolumes(p.dags.git_sync) else [])
  else [k.volume.pvc('dags', p.dags.pvc.claim_name, readOnly=true)];

local dagsMounts =
  if isBundle then
    (if p.dags.git_sync.auth == 'ssh' then [
       k.container.mount('git-sync-credentials', paths.gitCredentials, readOnly=true),
       k.container.mount('git-sync-known-hosts', paths.gitKnownHosts, readOnly=true),
     ] else [])
  else [k.container.mount('dags', paths.dagsMount, readOnly=true)];

// What a container that parses or runs DAGs needs besides its mounts: the bundle's connection.
local dagsEnv = if isBundle then bundle.env else [];

local gitSyncHttpPort = 8081;
local gitSync(name, oneTime) =
  local g = p.dags.git_sync;
  k.container.new(name, '%s:%s' % [g.image.repository, g.image.tag], p.image.pull_policy)
  + k.container.withEnv([
    k.container.envValue('GITSYNC_REPO', g.repo),
    k.container.envValue('GITSYNC_REF', g.ref),
    k.container.envValue('GITSYNC_DEPTH', g.depth),
    k.container.envValue('GITSYNC_ROOT', '/git'),
    k.container.envValue('GITSYNC_LINK', 'repo'),
    k.container.envValue('GITSYNC_MAX_FAILURES', g.max_failures),
  ]
  + (if oneTime then [k.container.envValue('GITSYNC_ONE_TIME', 'true')] else [
       k.container.envValue('GITSYNC_PERIOD', g.period),
       // git-sync's HTTP endpoint answers 5xx until the first sync is done, 200 after.
       k.container.envValue('GITSYNC_HTTP_BIND', ':%d' % gitSyncHttpPort),
     ])
  + (if g.auth == 'https' then [
       k.container.envSecret('GITSYNC_USERNAME', g.credentials_secret, 'GITSYNC_USERNAME'),
       k.container.envSecret('GITSYNC_PASSWORD', g.credentials_secret, 'GITSYNC_PASSWORD'),
     ] else [])
  + (if g.auth == 'ssh' then [
       k.container.envValue('GITSYNC_SSH_KEY_FILE', '/etc/git-secret/ssh'),
       // Host keys are always checked: known_hosts comes from the inventory.
       k.container.envValue('GITSYNC_SSH_KNOWN_HOSTS', 'true'),
       k.container.envValue('GITSYNC_SSH_KNOWN_HOSTS_FILE', '/etc/git-known-hosts/known_hosts'),
     ] else []))
  + k.container.withVolumeMounts(
    [k.container.mount('dags', '/git'), k.container.mount('tmp', '/tmp')]
    + (if g.auth == 'ssh' then [
         k.container.mount('git-sync-credentials', '/etc/git-secret/ssh', readOnly=true, subPath='ssh'),
         k.container.mount('git-sync-known-hosts', '/etc/git-known-hosts', readOnly=true),
       ] else [])
  )
  + (if oneTime then {} else
       k.container.withPorts([k.container.containerPort('git-sync', gitSyncHttpPort)])
       + k.container.withProbes(
         readiness=k.probe.http('/', 'git-sync', periodSeconds=10),
         liveness=k.probe.http('/', 'git-sync', periodSeconds=30, failureThreshold=5),
         // A first clone of a large repository may take minutes.
         startup=k.probe.http('/', 'git-sync', periodSeconds=10, failureThreshold=60),
       ))
  + k.container.withResources(g.resources)
  // git-sync's image runs as uid 65533, which its /etc/passwd knows (so no --add-user, which
  // would need a writable root filesystem); it writes only to its volume.
  + k.container.withRestrictedSecurityContext(65533, 65533, true);

// Node selection, spreading and priority of a component's pods (`params` is its inventory
// block; spreading and priority default to parameters.airflow.placement).
local placement(params, selector) =
  k.podSpec.withPlacement(std.get(params, 'node_selector', {}), std.get(params, 'tolerations', []), std.get(params, 'affinity', {}))
  + k.podSpec.withTopologySpread(std.get(params, 'topology_spread_keys', p.placement.topology_spread_keys), selector)
  + k.podSpec.withPriorityClass(std.get(params, 'priority_class_name', p.placement.priority_class_name));

// Deletes old task and component logs from the logs volume (the image's /clean-logs loop).
local logGroomer =
  local g = p.logs.groomer;
  k.container.new('log-groomer', image, p.image.pull_policy)
  + k.container.withArgs(['bash', '/clean-logs'])
  + k.container.withEnv(processEnv + [
    k.container.envValue('AIRFLOW__LOG_RETENTION_DAYS', g.retention_days),
    k.container.envValue('AIRFLOW__LOG_CLEANUP_FREQUENCY_MINUTES', g.frequency_minutes),
  ])
  + k.container.withVolumeMounts([k.container.mount('logs', paths.logs)])
  // Alive while the logs volume is still writable (a stale network volume restarts it).
  + k.container.withProbes(
    readiness=k.probe.exec(['test', '-w', paths.logs], periodSeconds=60, timeoutSeconds=10, failureThreshold=3),
    liveness=k.probe.exec(['test', '-w', paths.logs], periodSeconds=60, timeoutSeconds=10, failureThreshold=5),
  )
  + k.container.withResources(g.resources)
  + securityContext(true);

local waitForMigrations =
  k.container.new('wait-for-migrations', image, p.image.pull_policy)
  + k.container.withArgs(['db', 'check-migrations', '--migration-wait-timeout', std.toString(p.migrations.wait_timeout)])
  + k.container.withEnv(coreEnv())
  + k.container.withVolumeMounts(baseMounts + [secretsMount])
  + k.container.withResources(p.migrations.resources)
  + securityContext();

// Worker pods of the KubernetesExecutor: container "base" runs the task; the task talks to the
// Execution API with a token from the scheduler, so it gets no database or signing secret.
local podTemplate = {
  local g = p.workers,
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'airflow-worker-template', labels: labels('worker') },
  spec:
    k.podSpec.new([
      k.container.new('base', image, p.image.pull_policy)
      // Workers have no database: processEnv keeps the entrypoint from waiting for one (it would
      // check the default SQLite path and fail the pod after 20 tries).
      + k.container.withEnv(processEnv + remoteCredentials.env + otelEnv + dagsEnv + std.get(g, 'extra_env', []))
      + k.container.withVolumeMounts(baseMounts + dagsMounts + std.get(g, 'extra_volume_mounts', []))
      + k.container.withResources(g.resources)
      + securityContext(),
    ] + std.get(g, 'extra_containers', []), names.worker)
    + { restartPolicy: 'Never' }
    + k.podSpec.withInitContainers((if p.dags.mode == 'git-sync' then [gitSync('git-sync-init', true)] else []) + std.get(g, 'extra_init_containers', []))
    + k.podSpec.withVolumes(baseVolumes + dagsVolumes + std.get(g, 'extra_volumes', []))
    + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
    + k.podSpec.withServiceAccountToken(g.automount_service_account_token)
    + placement(g, labels('worker'))
    + k.podSpec.withImagePullSecrets(p.image.pull_secrets),
};

// Jsonnet's own YAML (values quoted): the native PyYAML dump cost more than the rest of the file.
local podTemplateYaml = std.manifestYamlDoc(podTemplate, indent_array_in_object=true, quote_keys=false) + '\n';

// A change of airflow.cfg rolls every pod that reads it.
local checksums = { 'checksum/airflow-config': kap.sha256(airflowCfg) };

{
  params: p,
  env: env,
  namespace: ns,
  image: image,
  names: names,
  paths: paths,
  ref: ref,
  labels: labels,
  selectorLabels: selectorLabels,
  airflowCfg: airflowCfg,
  config: config,
  dagsFolder: dagsFolder,
  isBundle: isBundle,
  bundle: bundle,
  executors: executors,
  isKubernetesExecutor: isKubernetesExecutor,
  isCeleryExecutor: isCeleryExecutor,
  isLocalExecutor: isLocalExecutor,
  apiServerUrl: apiServerUrl,
  logStore: logStore,
  secretsData: secretsData,
  adminPassword: adminPassword,
  postgresPassword: postgresPassword,
  celerySecretsData: celerySecretsData,
  secretFile: secretFile,
  pgbouncerPort: pgbouncerPort,
  upstream: upstream,
  processEnv: processEnv,
  coreEnv: coreEnv,
  configVolumes: configVolumes,
  configMounts: configMounts,
  secretsVolume: secretsVolume,
  secretsMount: secretsMount,
  baseVolumes: baseVolumes,
  baseMounts: baseMounts,
  dagsVolumes: dagsVolumes,
  dagsMounts: dagsMounts,
  dagsEnv: dagsEnv,
  gitSync: gitSync,
  waitForMigrations: waitForMigrations,
  logGroomer: logGroomer,
  placement: placement,
  securityContext: securityContext,
  checksums: checksums,
  podTemplate: podTemplate,
  podTemplateYaml: podTemplateYaml,
  podTemplateChecksum: kap.sha256(podTemplateYaml),

  // Liveness of a job-based component: its heartbeat in the metadata database.
  jobCheckProbe(jobType, periodSeconds=60)::
    k.probe.exec(['airflow', 'jobs', 'check', '--job-type', jobType, '--local'], periodSeconds=periodSeconds, timeoutSeconds=30, failureThreshold=5),

  // An Airflow container running `airflow <args>`; `direct` connects to the database itself,
  // not through PgBouncer.
  container(name, args, resources, direct=false)::
    k.container.new(name, image, p.image.pull_policy)
    + k.container.withArgs(args)
    + k.container.withEnv(coreEnv(direct))
    + k.container.withVolumeMounts([secretsMount])
    + k.container.withResources(resources)
    + securityContext(),

  // An ExternalSecret writing Secret `name` (secrets.mode external-secrets): `keys` maps the
  // Secret's keys to store keys under secrets.external_secrets.key_prefix.
  externalSecret(name, keys, component='secrets')::
    local eso = p.secrets.external_secrets;
    {
      apiVersion: 'external-secrets.io/v1',
      kind: 'ExternalSecret',
      metadata: { name: name, namespace: ns, labels: labels(component) },
      spec: {
        refreshInterval: eso.refresh_interval,
        secretStoreRef: { name: eso.store_name, kind: eso.store_kind },
        target: {
          name: name,
          creationPolicy: 'Owner',
          // Keep the Secret if the ExternalSecret goes: pods must not lose their keys on a prune.
          deletionPolicy: 'Retain',
        },
        data: [
          { secretKey: key, remoteRef: { key: eso.key_prefix + '/' + keys[key] } }
          for key in std.objectFields(keys)
        ],
      },
    },

  // A ServiceAccount of this environment (with the workload identity annotations).
  serviceAccount(name, component, automountToken=false)::
    k.serviceAccount.new(name, ns, automountToken)
    + k.serviceAccount.withLabels(labels(component))
    + k.serviceAccount.withAnnotations(p.security.service_account_annotations),

  // A PodDisruptionBudget, only where it can allow a disruption: with at least two replicas
  // (a minAvailable of 1 on a single replica would block every node drain), or a
  // maxUnavailable budget on a workload that may scale out.
  pdb(component, name, pdbParams, minReplicas, maxReplicas=minReplicas)::
    local maxUnavailable = std.get(pdbParams, 'max_unavailable', null);
    if !pdbParams.enabled || maxReplicas < 2 || (maxUnavailable == null && minReplicas < 2) then null
    else
      k.pdb.new(name, ns, selectorLabels(component), std.get(pdbParams, 'min_available', 1), maxUnavailable)
      + k.pdb.withLabels(labels(component)),

  // A long-running Airflow component: Deployment (or StatefulSet), ServiceAccount and PDB.
  // `needsDags` adds the DAG volume (and the git-sync sidecar in git-sync mode), or in bundle
  // mode the bundle's connection (and SSH key and known_hosts mounts). `groomLogs` adds the log
  // groomer; `autoscaled` leaves replicas to an autoscaler (GitOps would otherwise reset them).
  // The component's extra_* parameters add environment, volumes and containers.
  component(component, name, params, mainContainer, needsDags=false, extraVolumes=[], extraInitContainers=[], apiAccess=false,
            kind='Deployment', groomLogs=false, terminationGracePeriod=60, minReplicas=params.replicas, maxReplicas=minReplicas, autoscaled=false)::
    local withGitSync = needsDags && p.dags.mode == 'git-sync';
    local main = mainContainer + k.container.withVolumeMounts(baseMounts + (if needsDags then dagsMounts else []) + std.get(params, 'extra_volume_mounts', []))
                 + k.container.withEnv((if needsDags then dagsEnv else []) + std.get(params, 'extra_env', []));
    local sidecars = (if withGitSync then [gitSync('git-sync', false)] else [])
                     + (if groomLogs && p.logs.groomer.enabled then [logGroomer] else [])
                     + std.get(params, 'extra_containers', []);
    local pod =
      k.podSpec.new([main] + sidecars, name)
      + k.podSpec.withInitContainers([waitForMigrations] + (if withGitSync then [gitSync('git-sync-init', true)] else []) + extraInitContainers
                                     + std.get(params, 'extra_init_containers', []))
      + k.podSpec.withVolumes(baseVolumes + [secretsVolume] + (if needsDags then dagsVolumes else []) + extraVolumes + std.get(params, 'extra_volumes', []))
      + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
      + k.podSpec.withServiceAccountToken(apiAccess)
      + placement(params, selectorLabels(component))
      + k.podSpec.withImagePullSecrets(p.image.pull_secrets)
      + k.podSpec.withTerminationGracePeriod(terminationGracePeriod);
    local workload =
      (if kind == 'StatefulSet' then
         k.statefulSet.new(name, ns, params.replicas, selectorLabels(component), pod)
         + k.statefulSet.withServiceName(name)
         + k.statefulSet.withParallelPodManagement()
       else
         k.deployment.new(name, ns, params.replicas, selectorLabels(component), pod)
         + k.deployment.withRollingUpdate(0, 1))
      + k.deployment.withLabels(labels(component))
      + k.deployment.withPodLabels(labels(component))
      + k.deployment.withPodAnnotations(checksums)
      + (if autoscaled then k.deployment.withoutReplicas() else {});
    [
      workload,
      $.serviceAccount(name, component, apiAccess),
      $.pdb(component, name, params.pdb, minReplicas, maxReplicas),
    ],
}
