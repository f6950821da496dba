// An environment's secrets: Kapitan ref tags (generated once, committed under kapitan/refs,
// revealed at apply time) or ExternalSecrets (parameters.airflow.secrets.mode), and the one
// read-only `secrets` volume through which Airflow processes read them as files.
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = e.params;
local names = e.names;
local env = e.env;
local db = p.database;
local bundledDb = db.mode == 'bundled';

// Refs are generated once on first compile (||random) and committed under kapitan/refs;
// compiled/ only ever holds the tag, revealed at apply time.
local ref(name, generator='random:str:43') = '?{base64:targets/' + env + '/' + name + '||' + generator + '}';

local fromStore = p.secrets.mode == 'external-secrets';
local pgbouncer = db.pgbouncer.enabled;
local broker = p.celery.broker;

// Every secret value an Airflow pod may read, by its file name in the `secrets` volume: the Secret
// and key it comes from and, for the values this repository generates, its Kapitan ref (name and
// generator; kapitan-refs) and its store key (external-secrets). Secrets created outside Git (an
// external database's, an external broker's) have neither. The one source of these names: the
// Secrets, the ExternalSecrets and the rollout checksums all read them here.
local generated(secret, key, refName, generator, store) = { secret: secret, key: key, ref: refName, generator: generator, store: store };
local catalog = {
  // random:str draws from the URL-safe base64 alphabet: 43 characters and the '=' the Secret
  // appends (`suffix`) decode to the 32 bytes a Fernet key needs.
  'fernet-key': generated(names.secrets, 'fernet-key', 'fernet_key', 'random:str:43', 'fernet-key') + { suffix: '=' },
  // Airflow signs tokens with HS512, with the JWT secret (Execution API, UI) and with the API
  // secret key (log fetching): PyJWT warns about an HMAC key shorter than the hash, 64 bytes.
  // 86 characters of the base64 alphabet carry 64 bytes of randomness.
  'api-secret-key': generated(names.secrets, 'api-secret-key', 'api_secret_key', 'random:str:86', 'api-secret-key'),
  'jwt-secret': generated(names.secrets, 'jwt-secret', 'jwt_secret', 'random:str:86', 'jwt-secret'),
  // The pods compose the database and broker URLs from these: URL-safe, as random:str is.
  'database-password':
    if bundledDb then generated(names.metadataDb, 'password', 'postgres_password', 'random:str:32', 'postgres-password')
    else { secret: db.external.secret_name, key: db.external.password_key },
  'sql-alchemy-conn': { secret: names.metadataDb, key: names.metadataDbKey },
  'redis-password': generated(names.celerySecrets, 'redis-password', 'redis_password', 'random:str:32', 'redis-password'),
  'celery-broker-url': { secret: broker.external.secret_name, key: broker.external.secret_key },
  'admin-password': generated(names.adminPasswords, 'admin-password', 'admin_password', 'random:str:24', 'admin-password'),
  'flower-password': generated(names.celerySecrets, 'flower-password', 'flower_password', 'random:str:24', 'flower-password'),
};

// What a process reads, as files: `database` the metadata database (its URL, or the password it
// is composed with; both with PgBouncer in front of an external database), `result-backend` the
// same database for Celery's results, `broker` the Celery broker; any other need is one file.
local databaseFiles = if bundledDb then ['database-password'] else ['sql-alchemy-conn'] + (if pgbouncer then ['database-password'] else []);
local groups = {
  database: databaseFiles,
  'result-backend': databaseFiles,
  broker: if broker.mode == 'bundled' then ['redis-password'] else ['celery-broker-url'],
};
local filesOf(needs) =
  std.foldl(function(acc, f) if std.member(acc, f) then acc else acc + [f], std.flattenArrays([std.get(groups, n, [n]) for n in needs]), []);

// What changes when a value changes: the ref file's content (Kapitan writes it on the first
// compile: until then, nothing), or the store key and secrets.generation.
local refPath(name) = 'kapitan/refs/targets/' + env + '/' + name;
local valueIdentity(refName, storeKey) =
  if fromStore then p.secrets.external_secrets.key_prefix + '/' + storeKey
  // The ref's data field, not the file's bytes: a checkout with other line endings is the same ref.
  else if kap.file_exists(refPath(refName)).exists then std.toString(std.get(std.parseYaml(kap.file_read(refPath(refName))), 'data', ''))
  else '';
local identity(file) =
  local item = catalog[file];
  if std.objectHas(item, 'ref') then valueIdentity(item.ref, item.store) else '';

{
  ref: ref,

  // The Secrets this repository generates, each with the catalog entries it holds: the
  // shared keys, the admin's first-login password, the bundled database's password, the bundled
  // Redis's and Flower's passwords.
  generatedSecrets: [
    { name: names.secrets, files: ['fernet-key', 'api-secret-key', 'jwt-secret'] },
    { name: names.adminPasswords, files: ['admin-password'] },
  ] + (if bundledDb then [{ name: names.metadataDb, files: ['database-password'] }] else [])
  + (
    local celeryFiles = (if e.isCeleryExecutor && broker.mode == 'bundled' then ['redis-password'] else [])
                        + (if e.isCeleryExecutor && p.celery.flower.enabled then ['flower-password'] else []);
    if celeryFiles == [] then [] else [{ name: names.celerySecrets, files: celeryFiles }]
  ),

  // What identifies a secret value in Git (for rollout checksums): the ref's data (kapitan-refs),
  // or the store key under key_prefix (external-secrets).
  valueIdentity(refName, storeKey):: valueIdentity(refName, storeKey),

  // The Secret of values the user writes as `{ref: PATH}` (connections, sign-in secrets), `refs`
  // mapping each of its keys to PATH: tags of the refs targets/<env>/PATH, written once with
  // `kapitan refs --write` (kapitan-refs), or an ExternalSecret of the store keys
  // <key_prefix>/PATH (external-secrets); null without refs.
  userRefSecret(name, refs, component)::
    if refs == {} then null
    else if fromStore then $.externalSecret(name, refs, component)
    else k.secret.new(name, e.namespace, { [f]: '?{base64:targets/' + env + '/' + refs[f] + '}' for f in std.objectFields(refs) })
         + k.secret.withLabels(e.labels(component)),

  // Secret data: each file's key -> its Kapitan ref tag (kapitan-refs).
  refData(files):: { [catalog[f].key]: ref(catalog[f].ref, catalog[f].generator) + std.get(catalog[f], 'suffix', '') for f in files },
  // ExternalSecret data: each file's key -> its store key under key_prefix (external-secrets).
  storeKeys(files):: { [catalog[f].key]: catalog[f].store for f in files },

  // The read-only `secrets` volume holding the files of `needs` and nothing else (mode 0440,
  // group fsGroup): a process never sees a secret it does not read.
  secretsVolume(needs)::
    local files = filesOf(needs);
    local secretNames = std.foldl(function(acc, f) if std.member(acc, catalog[f].secret) then acc else acc + [catalog[f].secret], files, []);
    {
      name: 'secrets',
      projected: {
        defaultMode: 288,
        sources: [
          { secret: { name: s, items: [{ key: catalog[f].key, path: f } for f in files if catalog[f].secret == s] } }
          for s in secretNames
        ],
      },
    },
  secretsMount: k.container.mount('secrets', e.paths.secrets, readOnly=true),

  // A pod annotation that changes when a value the pod reads changes in Git (a new ref, another
  // store key, secrets.generation), so that the pod rolls: Deployments and StatefulSets alike,
  // no `kubectl rollout restart`. Only digests: the values stay in kapitan/refs.
  secretsChecksum(needs):: {
    'checksum/secrets': kap.sha256(std.join('\n', [std.toString(p.secrets.generation)] + [
      std.join(' ', [f, catalog[f].secret, catalog[f].key, identity(f)])
      for f in filesOf(needs)
    ])),
  },

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
          // The Secret goes with its ExternalSecret (ownerReference); Retain keeps its data when a
          // key disappears from the store, instead of emptying it under running pods.
          deletionPolicy: 'Retain',
        },
        data: [
          { secretKey: key, remoteRef: { key: eso.key_prefix + '/' + keys[key] } }
          for key in std.objectFields(keys)
        ],
      },
    },
}
