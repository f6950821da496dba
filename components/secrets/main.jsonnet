// The secrets every component shares, one Secret name each whatever their source:
// - kapitan-refs: Secrets holding Kapitan ref tags, generated once per environment, committed
//   under kapitan/refs, identical in every pod, never rotated by a compile;
// - external-secrets: ExternalSecret objects that make the External Secrets Operator write the
//   same Secrets from a store: no secret data in Git at all.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local bundledDb = p.database.mode == 'bundled';
local eso = p.secrets.external_secrets;
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

// An ExternalSecret writing Secret `name`: `keys` maps the Secret's keys to store keys under
// the prefix.
local externalSecret(name, keys) = {
  apiVersion: 'external-secrets.io/v1',
  kind: 'ExternalSecret',
  metadata: { name: name, namespace: a.namespace, labels: a.labels('secrets') },
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
};

local fromExternalSecrets = [
  externalSecret(a.names.secrets, { 'fernet-key': 'fernet-key', 'api-secret-key': 'api-secret-key', 'jwt-secret': 'jwt-secret' }),
  externalSecret(a.names.adminPasswords, { 'admin-password': 'admin-password' }),
  // The pods compose the database URL from it, so it must be URL-safe (letters, digits, - and _).
  if bundledDb then externalSecret(a.names.metadataDb, { password: 'postgres-password' }),
  if celery then externalSecret(a.names.celerySecrets, { [key]: key for key in std.objectFields(a.celerySecretsData) }),
];

k.files(if p.secrets.mode == 'external-secrets' then fromExternalSecrets else fromRefs)
