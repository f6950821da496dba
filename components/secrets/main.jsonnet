// The secrets every component shares, as Kapitan ref tags: generated once per environment,
// committed under kapitan/refs, identical in every pod, never rotated by a compile.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local bundledDb = a.params.database.mode == 'bundled';

k.files([
  k.secret.new(a.names.secrets, a.namespace, a.secretsData) + k.secret.withLabels(a.labels('secrets')),
  // `admin-password` (generator) sorts before the JSON file that embeds it, see below.
  // SimpleAuthManager's password file: the admin's first-login password (reveal it with
  // `kapitan refs --reveal --tag '?{base64:targets/<env>/admin_password}'`).
  k.secret.new(a.names.adminPasswords, a.namespace, {
    'admin-password': a.adminPassword,
    'simple_auth_manager_passwords.json': a.adminPasswordsJson,
  })
  + k.secret.withLabels(a.labels('secrets')),
  // Kapitan compiles values in key order, and a tag inside a longer string cannot carry its
  // generator: `password` (generator) must sort before `sql_alchemy_conn` (embedded).
  if bundledDb then
    k.secret.new(a.names.metadataDb, a.namespace, { password: a.postgresPassword, sql_alchemy_conn: a.metadataDbUrl })
    + k.secret.withLabels(a.labels('secrets')),
])
