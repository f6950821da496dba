// Bundled PostgreSQL for environments without a managed database: a StatefulSet whose data
// lives on a PersistentVolumeClaim, so a restart never loses the metadata database.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local db = p.database.bundled;
local name = a.names.postgres;
local uid = 999;  // the postgres user of the official Debian-based image

// The image reads POSTGRES_PASSWORD_FILE only when it creates the data directory. So that a
// rotated password (a new ref or store value; the pod rolls on its checksum) really becomes the
// role's password, every start sets it again over the local socket, where the image trusts
// the server's own user, reading it from the file inside psql (never on a command line).
// It waits for the real server (the entrypoint's first-init server listens on the socket only,
// so TCP answers once the real one runs), for as long as crash recovery takes, and it never
// fails: a failing postStart hook would kill PostgreSQL, mid-recovery included. What it did goes
// to the container's log.
local setPassword = |||
  #!/bin/sh
  log() { echo "set-password: $*" > /proc/1/fd/2 2>/dev/null || echo "set-password: $*" >&2; }
  waited=0
  until pg_isready -q -h 127.0.0.1; do
    waited=$((waited + 2))
    if [ "$waited" -ge 3600 ]; then log "PostgreSQL not ready after an hour; password not set"; exit 0; fi
    sleep 2
  done
  for try in 1 2 3 4 5; do
    if psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -q <<'SQL'
  \set password `cat "$POSTGRES_PASSWORD_FILE"`
  ALTER ROLE CURRENT_USER PASSWORD :'password';
  SQL
    then log "the role's password is the one in $POSTGRES_PASSWORD_FILE"; exit 0; fi
    sleep 3
  done
  log "could not set the role's password; it is still the previous one"
  exit 0
|||;

local container =
  k.container.new('postgres', db.image.repository + ':' + db.image.tag, p.image.pull_policy)
  + k.container.withEnv([
    k.container.envValue('POSTGRES_USER', db.user),
    k.container.envValue('POSTGRES_DB', db.database),
    // The image's entrypoint reads the password from a file: no secret in the environment.
    k.container.envValue('POSTGRES_PASSWORD_FILE', '/run/secrets/postgres/password'),
    k.container.envValue('PGDATA', '/var/lib/postgresql/data/pgdata'),
  ])
  + k.container.withPorts([k.container.containerPort('postgres', 5432)])
  + k.container.withProbes(
    readiness=k.probe.exec(['pg_isready', '-U', db.user, '-d', db.database, '-h', '127.0.0.1'], periodSeconds=10, timeoutSeconds=5, failureThreshold=6),
    liveness=k.probe.exec(['pg_isready', '-U', db.user, '-d', db.database, '-h', '127.0.0.1'], periodSeconds=30, timeoutSeconds=5, failureThreshold=6),
    // A first start runs initdb, a restart may replay the WAL: up to 5 min before liveness counts.
    startup=k.probe.exec(['pg_isready', '-U', db.user, '-d', db.database, '-h', '127.0.0.1'], periodSeconds=5, timeoutSeconds=5, failureThreshold=60),
  )
  + k.container.withVolumeMounts([
    k.container.mount('data', '/var/lib/postgresql/data'),
    k.container.mount('run', '/var/run/postgresql'),
    k.container.mount('tmp', '/tmp'),
    k.container.mount('password', '/run/secrets/postgres', readOnly=true),
    k.container.mount('scripts', '/scripts', readOnly=true),
  ])
  + { lifecycle: { postStart: { exec: { command: ['sh', '/scripts/set-password.sh'] } } } }
  + k.container.withResources(db.resources)
  + k.container.withRestrictedSecurityContext(uid, uid, true);

local pod =
  k.podSpec.new([container], name)
  + k.podSpec.withVolumes([
    k.volume.emptyDir('run'),
    k.volume.emptyDir('tmp'),
    k.volume.secret('password', a.names.metadataDb),
    k.volume.configMap('scripts', name),
  ])
  + k.podSpec.withSecurityContext(uid, uid, uid)
  + k.podSpec.withTerminationGracePeriod(60);

k.files([
  k.configMap.new(name, a.namespace, { 'set-password.sh': setPassword }) + k.configMap.withLabels(a.labels('postgres')),
  k.statefulSet.new(name, a.namespace, 1, a.selectorLabels('postgres'), pod)
  + k.statefulSet.withServiceName(name)
  + k.statefulSet.withVolumeClaimTemplate('data', db.storage_size, db.storage_class)
  + k.statefulSet.withLabels(a.labels('postgres'))
  + k.statefulSet.withPodLabels(a.labels('postgres'))
  + k.statefulSet.withPodAnnotations({ 'checksum/set-password': std.md5(setPassword) } + a.secretsChecksum(['database-password']))
  // The metadata database lives on the claim, which outlives the StatefulSet (a switch to
  // database.mode: external, or the environment's removal, stops PostgreSQL but keeps its data).
  + k.statefulSet.withRetainedClaims(),
  // Headless: the StatefulSet's governing Service; clients reach the single pod directly.
  k.service.new(name, a.namespace, a.selectorLabels('postgres'), [k.service.port('postgres', 5432)])
  + { spec+: { clusterIP: 'None' } }
  + k.service.withLabels(a.labels('postgres')),
  k.serviceAccount.new(name, a.namespace) + k.serviceAccount.withLabels(a.labels('postgres')),
])
