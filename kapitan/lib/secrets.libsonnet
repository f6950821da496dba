// An environment's secrets: Kapitan ref tags (generated once, committed under kapitan/refs,
// revealed at apply time) or ExternalSecrets (parameters.airflow.secrets.mode), and the one
// read-only `secrets` volume through which Airflow processes read them as files.
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';

local p = e.params;
local names = e.names;
local env = e.env;
local db = p.database;
local bundledDb = db.mode == 'bundled';

// Refs are generated once on first compile (||random) and committed under kapitan/refs;
// compiled/ only ever holds the tag, revealed at apply time.
local ref(name, generator='random:str:43') = '?{base64:targets/%s/%s||%s}' % [env, name, generator];

{
  ref: ref,

  secretsData: {
    // random:str draws from the URL-safe base64 alphabet: 43 characters and '=' decode to the
    // 32 bytes a Fernet key needs.
    'fernet-key': ref('fernet_key') + '=',
    'api-secret-key': ref('api_secret_key'),
    // Airflow signs its tokens with HS512: PyJWT warns about (and RFC 7518 forbids) an HMAC key
    // shorter than the hash, 64 bytes. 86 characters of 6 bits each carry 64 bytes of entropy.
    'jwt-secret': ref('jwt_secret', 'random:str:86'),
  },

  adminPassword: ref('admin_password', 'random:str:24'),

  postgresPassword: ref('postgres_password', 'random:str:32'),

  // The bundled Redis's password (URL-safe: it is composed into the broker URL) and Flower's.
  celerySecretsData:
    (if p.celery.broker.mode == 'bundled' then { 'redis-password': ref('redis_password', 'random:str:32') } else {})
    + (if p.celery.flower.enabled then { 'flower-password': ref('flower_password', 'random:str:24') } else {}),

  // One read-only volume with every value an Airflow process needs (mode 0440, group fsGroup).
  secretsVolume: {
    name: 'secrets',
    projected: {
      defaultMode: 288,
      sources: [
        { secret: { name: names.secrets, items: [{ key: key, path: key } for key in ['fernet-key', 'api-secret-key', 'jwt-secret']] } },
        { secret: { name: names.metadataDb, items:
          if bundledDb then [{ key: 'password', path: 'database-password' }]
          else [{ key: names.metadataDbKey, path: 'sql-alchemy-conn' }]
               + (if db.pgbouncer.enabled then [{ key: db.external.password_key, path: 'database-password' }] else []) } },
      ] + (
        if !e.isCeleryExecutor then []
        else if p.celery.broker.mode == 'bundled' then [{ secret: { name: names.celerySecrets, items: [{ key: 'redis-password', path: 'redis-password' }] } }]
        else [{ secret: { name: p.celery.broker.external.secret_name, items: [{ key: p.celery.broker.external.secret_key, path: 'celery-broker-url' }] } }]
      ),
    },
  },
  secretsMount: k.container.mount('secrets', e.paths.secrets, readOnly=true),

  // An ExternalSecret writing Secret `name` (secrets.mode external-secrets): `keys` maps the
  // Secret's keys to store keys under secrets.external_secrets.key_prefix.
  externalSecret(name, keys, component='secrets')::
    local eso = p.secrets.external_secrets;
    {
      apiVersion: 'external-secrets.io/v1',
      kind: 'ExternalSecret',
      metadata: { name: name, namespace: e.namespace, labels: e.labels(component) },
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
}
