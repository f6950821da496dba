// PgBouncer between Airflow and the metadata database (database.pgbouncer.enabled): Airflow's
// processes open many short connections; PgBouncer multiplexes them onto a few. The migration
// Job and `db clean` connect directly (they hold locks across transactions).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';
local text = import 'text.libsonnet';

local p = a.params;
local b = p.database.pgbouncer;
local u = a.upstream;
local uid = 65534;  // nobody
local configDir = '/etc/pgbouncer';
local authDir = '/etc/pgbouncer/auth';
local passwordDir = '/run/secrets/database';

local ini = text.fill(|||
  [databases]
  %(database)s = host=%(host)s port=%(port)s dbname=%(database)s

  [pgbouncer]
  listen_addr = *
  listen_port = %(listenPort)s
  unix_socket_dir =
  auth_type = scram-sha-256
  auth_file = %(authDir)s/users.txt
  pool_mode = %(poolMode)s
  max_client_conn = %(maxClientConn)s
  default_pool_size = %(poolSize)s
  server_tls_sslmode = %(sslmode)s
  ignore_startup_parameters = extra_float_digits
  ; Airflow's async engine (asyncpg) prepares statements: tracked per server connection.
  max_prepared_statements = 200
  log_connections = 0
  log_disconnections = 0
|||, {
  database: u.database, host: u.host, port: u.port, listenPort: a.pgbouncerPort, authDir: authDir,
  poolMode: b.pool_mode, maxClientConn: b.max_client_conn, poolSize: b.default_pool_size, sslmode: u.sslmode,
});

local image = b.image.repository + ':' + b.image.tag;
local passwordKey = if p.database.mode == 'bundled' then 'password' else p.database.external.password_key;

// users.txt holds the one user's password (PgBouncer logs in to the database with it): written
// at start from the Secret's file into a memory volume, `"` doubled as PgBouncer expects.
local writeUsers =
  k.container.new('write-users', image, p.image.pull_policy)
  + k.container.withCommand(['sh', '-c', 'umask 077 && printf \'"%%s" "%%s"\\n\' "%s" "$(sed \'s/"/""/g\' %s/password)" > %s/users.txt' % [u.user, passwordDir, authDir]])
  + k.container.withVolumeMounts([k.container.mount('auth', authDir), k.container.mount('password', passwordDir, readOnly=true)])
  + k.container.withResources({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } })
  + k.container.withRestrictedSecurityContext(uid, uid, true);

local container =
  k.container.new('pgbouncer', image, p.image.pull_policy)
  + k.container.withCommand(['pgbouncer', configDir + '/pgbouncer.ini'])
  + k.container.withPorts([k.container.containerPort('pgbouncer', a.pgbouncerPort)])
  + k.container.withProbes(
    readiness=k.probe.tcp('pgbouncer', periodSeconds=10, failureThreshold=3),
    liveness=k.probe.tcp('pgbouncer', periodSeconds=30, failureThreshold=5),
  )
  + k.container.withVolumeMounts([
    k.container.mount('config', configDir + '/pgbouncer.ini', readOnly=true, subPath='pgbouncer.ini'),
    k.container.mount('auth', authDir, readOnly=true),
  ])
  + k.container.withResources(b.resources)
  + k.container.withRestrictedSecurityContext(uid, uid, true);

local pod =
  k.podSpec.new([container], a.names.pgbouncer)
  + k.podSpec.withInitContainers([writeUsers])
  + k.podSpec.withVolumes([
    k.volume.configMap('config', a.names.pgbouncer),
    k.volume.emptyDir('auth', medium='Memory', sizeLimit='1Mi'),
    k.volume.secret('password', a.names.metadataDb, items={ [passwordKey]: 'password' }),
  ])
  + k.podSpec.withSecurityContext(uid, uid, uid)
  + a.placement(b, a.selectorLabels('pgbouncer'))
  + k.podSpec.withImagePullSecrets(p.image.pull_secrets)
  + k.podSpec.withTerminationGracePeriod(60);

k.files([
  k.configMap.new(a.names.pgbouncer, a.namespace, { 'pgbouncer.ini': ini }) + k.configMap.withLabels(a.labels('pgbouncer')),
  k.deployment.new(a.names.pgbouncer, a.namespace, b.replicas, a.selectorLabels('pgbouncer'), pod)
  + k.deployment.withRollingUpdate(0, 1)
  + k.deployment.withLabels(a.labels('pgbouncer'))
  + k.deployment.withPodLabels(a.labels('pgbouncer'))
  // Its users file is written at start from the database password: a new password rolls it.
  + k.deployment.withPodAnnotations({ 'checksum/pgbouncer-config': std.md5(ini) } + a.secretsChecksum(['database-password'])),
  k.service.new(a.names.pgbouncer, a.namespace, a.selectorLabels('pgbouncer'), [k.service.port('pgbouncer', a.pgbouncerPort)])
  + k.service.withLabels(a.labels('pgbouncer')),
  k.serviceAccount.new(a.names.pgbouncer, a.namespace) + k.serviceAccount.withLabels(a.labels('pgbouncer')),
  a.pdb('pgbouncer', a.names.pgbouncer, b.pdb, b.replicas),
])
