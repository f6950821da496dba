// The secrets every component shares, one Secret name each whatever their source:
// - kapitan-refs: Secrets holding Kapitan ref tags, generated once per environment, committed
//   under kapitan/refs, identical in every pod, never rotated by a compile;
// - external-secrets: ExternalSecret objects that make the External Secrets Operator write the
//   same Secrets from a store: no secret data in Git at all.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local bundledDb = p.database.mode == 'bundled';
local celery = a.isCeleryExecutor && a.celerySecretsData != {};

local fromRefs = [
  k.secret.new(a.names.secrets, a.namespace, a.secretsData) + k.secret.withLabels(a.labels('secrets')),
  // The admin's first-login password (reveal it with
  // `kapitan refs --reveal --tag '?{base64:targets/<env>/admin_password}'`).
  k.secret.new(a.names.adminPasswords, a.namespace, { 'admin-password': a.adminPassword })
  + k.secret.withLabels(a.labels('secrets')),
  if bundledDb then
    k.secret.new(a.names.metadataDb, a.namespace, { password: a.postgresPassword }) + k.secret.withLabels(a.labels('secrets')),
  if celery then
    k.secret.new(a.names.celerySecrets, a.namespace, a.celerySecretsData) + k.secret.withLabels(a.labels('secrets')),
];

local fromExternalSecrets = [
  a.externalSecret(a.names.secrets, { 'fernet-key': 'fernet-key', 'api-secret-key': 'api-secret-key', 'jwt-secret': 'jwt-secret' }),
  a.externalSecret(a.names.adminPasswords, { 'admin-password': 'admin-password' }),
  // The pods compose the database URL from it, so it must be URL-safe (letters, digits, - and _).
  if bundledDb then a.externalSecret(a.names.metadataDb, { password: 'postgres-password' }),
  if celery then a.externalSecret(a.names.celerySecrets, { [key]: key for key in std.objectFields(a.celerySecretsData) }),
];

k.files(if p.secrets.mode == 'external-secrets' then fromExternalSecrets else fromRefs)
