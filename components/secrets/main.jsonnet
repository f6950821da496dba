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

local fromRefs = [
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
];

// An ExternalSecret writing Secret `name`: `keys` maps template variables to store keys under
// the prefix; `template` maps the Secret's keys to Go templates over those variables.
local externalSecret(name, keys, template) = {
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
      template: { engineVersion: 'v2', type: 'Opaque', data: template },
    },
    data: [
      { secretKey: variable, remoteRef: { key: eso.key_prefix + '/' + keys[variable] } }
      for variable in std.objectFields(keys)
    ],
  },
};

local fromExternalSecrets = [
  externalSecret(a.names.secrets,
                 { fernet_key: 'fernet-key', api_secret_key: 'api-secret-key', jwt_secret: 'jwt-secret' },
                 { 'fernet-key': '{{ .fernet_key }}', 'api-secret-key': '{{ .api_secret_key }}', 'jwt-secret': '{{ .jwt_secret }}' }),
  externalSecret(a.names.adminPasswords, { admin_password: 'admin-password' }, {
    'admin-password': '{{ .admin_password }}',
    'simple_auth_manager_passwords.json': '{"admin": {{ .admin_password | toJson }}}',
  }),
  if bundledDb then
    externalSecret(a.names.metadataDb, { password: 'postgres-password' }, {
      password: '{{ .password }}',
      sql_alchemy_conn: 'postgresql+psycopg2://%s:{{ .password | urlquery }}@%s.%s.svc.cluster.local:5432/%s' % [
        p.database.bundled.user, a.names.postgres, a.namespace, p.database.bundled.database,
      ],
    }),
];

k.files(if p.secrets.mode == 'external-secrets' then fromExternalSecrets else fromRefs)
