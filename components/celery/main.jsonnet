// The CeleryExecutor: the Redis broker (bundled, or an external one from a Secret), the Celery
// workers and, optionally, Flower and an autoscaler for the workers (main.jsonnet imports it
// with CeleryExecutor among the executors).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';
local text = import 'text.libsonnet';

local p = a.params;
local c = p.celery;
local w = c.workers;
local scaling = w.autoscaling;
local autoscaled = scaling.mode != 'none';

// --- Redis -----------------------------------------------------------------------------------
local redis = c.broker.bundled;
local redisUid = 999;  // the redis user of the official image
local passwordDir = '/run/secrets/redis';
local authDir = '/etc/redis/auth';

// The password reaches Redis through an included file written at start (never an argument,
// which `ps` would show, nor an environment variable).
local redisConf = text.fill(|||
  bind 0.0.0.0 -::*
  port 6379
  dir /data
  appendonly yes
  appendfsync everysec
  # Queued tasks must never be evicted.
  maxmemory-policy noeviction
  include %(authDir)s/auth.conf
|||, { authDir: authDir });

local redisContainer =
  k.container.new('redis', redis.image.repository + ':' + redis.image.tag, p.image.pull_policy)
  + k.container.withCommand(['redis-server', '/etc/redis/redis.conf'])
  + k.container.withPorts([k.container.containerPort('redis', 6379)])
  + k.container.withProbes(
    readiness=k.probe.exec(['sh', '-c', 'REDISCLI_AUTH="$(cat %s/redis-password)" redis-cli ping | grep -q PONG' % passwordDir],
                           periodSeconds=10, timeoutSeconds=5, failureThreshold=3),
    liveness=k.probe.tcp('redis', periodSeconds=30, failureThreshold=5),
    // Loading a large append-only file takes a while: up to 5 min before liveness counts.
    startup=k.probe.tcp('redis', periodSeconds=5, failureThreshold=60),
  )
  + k.container.withVolumeMounts([
    k.container.mount('data', '/data'),
    k.container.mount('config', '/etc/redis/redis.conf', readOnly=true, subPath='redis.conf'),
    k.container.mount('auth', authDir, readOnly=true),
    k.container.mount('password', passwordDir, readOnly=true),
  ])
  + k.container.withResources(redis.resources)
  + k.container.withRestrictedSecurityContext(redisUid, redisUid, true);

local writeAuth =
  k.container.new('write-auth', redis.image.repository + ':' + redis.image.tag, p.image.pull_policy)
  + k.container.withCommand(['sh', '-c', 'umask 077 && printf "requirepass %%s\\n" "$(cat %s/redis-password)" > %s/auth.conf' % [passwordDir, authDir]])
  + k.container.withVolumeMounts([k.container.mount('auth', authDir), k.container.mount('password', passwordDir, readOnly=true)])
  + k.container.withResources({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } })
  + k.container.withRestrictedSecurityContext(redisUid, redisUid, true);

local redisPod =
  k.podSpec.new([redisContainer], a.names.redis)
  + k.podSpec.withInitContainers([writeAuth])
  + k.podSpec.withVolumes([
    k.volume.configMap('config', a.names.redis),
    k.volume.emptyDir('auth', medium='Memory', sizeLimit='1Mi'),
    k.volume.secret('password', a.names.celerySecrets, items={ 'redis-password': 'redis-password' }),
  ])
  + k.podSpec.withSecurityContext(redisUid, redisUid, redisUid)
  + a.placement({}, a.selectorLabels('redis'))
  + k.podSpec.withTerminationGracePeriod(60);

local redisObjects = if c.broker.mode != 'bundled' then [] else [
  k.configMap.new(a.names.redis, a.namespace, { 'redis.conf': redisConf }) + k.configMap.withLabels(a.labels('redis')),
  k.statefulSet.new(a.names.redis, a.namespace, 1, a.selectorLabels('redis'), redisPod)
  + k.statefulSet.withServiceName(a.names.redis)
  + k.statefulSet.withVolumeClaimTemplate('data', redis.storage_size, redis.storage_class)
  + k.statefulSet.withRetainedClaims()
  + k.statefulSet.withLabels(a.labels('redis'))
  + k.statefulSet.withPodLabels(a.labels('redis'))
  // The password is read at start: a new one rolls Redis (and its clients, by their own checksums).
  + k.statefulSet.withPodAnnotations({ 'checksum/redis-config': std.md5(redisConf) } + a.secretsChecksum(['redis-password'])),
  k.service.new(a.names.redis, a.namespace, a.selectorLabels('redis'), [k.service.port('redis', 6379)])
  + k.service.withLabels(a.labels('redis')),
  k.serviceAccount.new(a.names.redis, a.namespace) + k.serviceAccount.withLabels(a.labels('redis')),
];

// --- Workers ---------------------------------------------------------------------------------
local workerLogsPort = 8793;
local worker =
  a.container('worker', ['celery', 'worker', '--queues', std.join(',', w.queues)], w.resources,
              // Tasks run here: no signing key, no fernet key, no [database] sql_alchemy_conn.
              // Celery's result backend is the metadata database itself, so its credentials are
              // still in this pod (and the migration wait's): a separate result backend would
              // remove them. The API secret key checks the api-server's log-fetching tokens.
              ['broker', 'result-backend', 'api-secret-key'])
  // dumb-init (the image's PID 1) would pass SIGTERM to the whole process group and kill the
  // running tasks; with this it reaches the Celery main process alone, which then stops taking
  // tasks and waits for the running ones (warm shutdown).
  + k.container.withEnv([k.container.envValue('DUMB_INIT_SETSID', 0)])
  + k.container.withPorts([k.container.containerPort('worker-logs', workerLogsPort)])
  + k.container.withProbes(
    // Ready once it serves task logs; alive while it answers a ping through the broker.
    readiness=k.probe.tcp('worker-logs', periodSeconds=15),
    liveness=k.probe.exec(['sh', '-c', 'exec celery --app airflow.providers.celery.executors.celery_executor.app inspect ping --timeout 20 --destination "celery@$(hostname)"'],
                          periodSeconds=60, timeoutSeconds=30, failureThreshold=5),
    // Until it serves task logs (the worker is up): the ping would fail before it connects.
    startup=k.probe.tcp('worker-logs', periodSeconds=5, failureThreshold=60),
  );

local workerObjects = a.component('celery-worker', a.names.celeryWorker, w, worker,
                                  needsDags=true, kind='StatefulSet', groomLogs=true,
                                  terminationGracePeriod=w.termination_grace_period_seconds,
                                  minReplicas=if autoscaled then scaling.min_replicas else w.replicas,
                                  maxReplicas=if autoscaled then scaling.max_replicas else w.replicas,
                                  autoscaled=autoscaled);

// Headless: the StatefulSet's governing Service (stable names for the workers' log server).
local workerService =
  k.service.new(a.names.celeryWorker, a.namespace, a.selectorLabels('celery-worker'), [k.service.port('worker-logs', workerLogsPort)])
  + { spec+: { clusterIP: 'None' } }
  + k.service.withLabels(a.labels('celery-worker'));

// KEDA: one worker per `concurrency` tasks queued or running on the workers' queues. Tasks of
// the default executor have no executor recorded, so Celery counts them when it comes first.
local celeryTasks =
  if a.executors[0] == 'CeleryExecutor' then "(executor IS NULL OR executor = 'CeleryExecutor')"
  else "executor = 'CeleryExecutor'";
local kedaQuery =
  'SELECT ceil(COUNT(*)::decimal / ' + w.concurrency + ") FROM task_instance WHERE state IN ('queued', 'running') AND queue IN ("
  + std.join(', ', ["'" + q + "'" for q in w.queues]) + ') AND ' + celeryTasks;
local dbPasswordKey = if p.database.mode == 'bundled' then 'password' else p.database.external.password_key;

local keda = [
  {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name: 'airflow-keda-database', namespace: a.namespace, labels: a.labels('celery-worker') },
    spec: { secretTargetRef: [{ parameter: 'password', name: a.names.metadataDb, key: dbPasswordKey }] },
  },
  {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: a.names.celeryWorker, namespace: a.namespace, labels: a.labels('celery-worker') },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: a.names.celeryWorker },
      pollingInterval: scaling.keda.polling_interval,
      // Long enough for a worker's last tasks to end before it is stopped.
      cooldownPeriod: scaling.keda.cooldown_period,
      minReplicaCount: scaling.min_replicas,
      maxReplicaCount: scaling.max_replicas,
      triggers: [{
        type: 'postgresql',
        metadata: {
          host: a.upstream.host,
          port: std.toString(a.upstream.port),
          userName: a.upstream.user,
          dbName: a.upstream.database,
          sslmode: a.upstream.sslmode,
          query: kedaQuery,
          targetQueryValue: '1',
        },
        authenticationRef: { name: 'airflow-keda-database' },
      }],
    },
  },
];

local hpa = [
  k.hpa.new(a.names.celeryWorker, a.namespace, workerObjects[0], scaling.min_replicas, scaling.max_replicas, scaling.hpa.target_cpu_utilization)
  // Scale in one worker at a time, slowly: each drains its tasks first.
  + k.hpa.withScaleDown(600, 1)
  + k.hpa.withLabels(a.labels('celery-worker')),
];

// --- Flower ----------------------------------------------------------------------------------
local f = c.flower;
local flowerAuthDir = '/opt/airflow/flower-auth';
local flower =
  a.container('flower', ['celery', 'flower'], f.resources, ['broker'])
  + k.container.withEnv([
    k.container.envValue('AIRFLOW__CELERY__FLOWER_PORT', f.port),
    // Basic auth as admin:<generated password>, read from a file like the other secrets.
    k.container.envValue('AIRFLOW__CELERY__FLOWER_BASIC_AUTH_CMD', "sh -c 'printf \"admin:%%s\" \"$(cat %s/flower-password)\"'" % flowerAuthDir),
  ])
  + k.container.withVolumeMounts([k.container.mount('flower-auth', flowerAuthDir, readOnly=true)])
  + k.container.withPorts([k.container.containerPort('flower', f.port)])
  // Every page needs the password: probe the port.
  + k.container.withProbes(readiness=k.probe.tcp('flower', periodSeconds=15), liveness=k.probe.tcp('flower', periodSeconds=30));

local flowerParams = { replicas: 1, pdb: { enabled: false } };
local flowerObjects = if !f.enabled then [] else
  a.component('flower', a.names.flower, flowerParams, flower, extraVolumes=[
    k.volume.secret('flower-auth', a.names.celerySecrets, items={ 'flower-password': 'flower-password' }),
  ], extraSecrets=['flower-password']) + [
    k.service.new(a.names.flower, a.namespace, a.selectorLabels('flower'), [k.service.port('flower', f.port)])
    + k.service.withLabels(a.labels('flower')),
  ];

k.files(
  redisObjects + workerObjects + [workerService] + flowerObjects
  + (if scaling.mode == 'keda' then keda else if scaling.mode == 'hpa' then hpa else [])
)
