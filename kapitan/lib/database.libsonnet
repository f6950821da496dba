// The stores Airflow connects to (parameters.airflow.database, parameters.airflow.celery.broker):
// where the metadata database is, directly or through PgBouncer, and the commands that print
// the SQLAlchemy, result-backend and broker URLs from the secret files (`_CMD` options), so that
// no Secret ever mixes a password with text.
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';

local p = e.params;
local names = e.names;
local ns = e.namespace;
local db = p.database;
local bundledDb = db.mode == 'bundled';
local pgbouncer = db.pgbouncer.enabled;
local dbUser = if bundledDb then db.bundled.user else db.external.user;
local pgbouncerPort = 6543;
local secretFile = e.secretFile;

// The database PgBouncer and KEDA connect to.
local upstream =
  if bundledDb then { host: names.postgres + '.' + ns + '.svc.cluster.local', port: 5432, database: db.bundled.database, user: db.bundled.user, sslmode: 'disable' }
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
    passwordUrlCmd(prefix + 'postgresql+psycopg2://' + dbUser + ':', '@' + names.pgbouncer + '.' + ns + '.svc.cluster.local:' + pgbouncerPort + '/' + upstream.database, 'database-password')
  else if bundledDb then
    passwordUrlCmd(prefix + 'postgresql+psycopg2://' + dbUser + ':', '@' + upstream.host + ':5432/' + upstream.database, 'database-password')
  else if prefix == '' then e.catSecret('sql-alchemy-conn')
  else prefixedUrlCmd(prefix, 'sql-alchemy-conn');

{
  bundled: bundledDb,
  pgbouncer: pgbouncer,
  pgbouncerPort: pgbouncerPort,
  upstream: upstream,

  // [database] sql_alchemy_conn.
  sqlAlchemyConnEnv(direct=false)::
    [k.container.envValue('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', databaseUrlCmd('', direct))],

  // [celery] broker_url.
  brokerUrlEnv:
    [k.container.envValue('AIRFLOW__CELERY__BROKER_URL_CMD',
                          if p.celery.broker.mode == 'bundled' then
                            passwordUrlCmd('redis://:', '@' + names.redis + '.' + ns + '.svc.cluster.local:6379/0', 'redis-password')
                          else e.catSecret('celery-broker-url'))],

  // [celery] result_backend: the metadata database (`db+`).
  resultBackendEnv(direct=false)::
    [k.container.envValue('AIRFLOW__CELERY__RESULT_BACKEND_CMD', databaseUrlCmd('db+', direct))],
}
