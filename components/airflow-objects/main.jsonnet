// Connections, variables and pools declared in the inventory (parameters.airflow.connections,
// .variables, .pools), applied by a Job with Airflow's own import commands: no clicking in the
// UI, and what Git says wins (existing entries are overwritten; entries only in the UI stay).
// Secret values come from files: a Secret of Kapitan refs or an ExternalSecret (`ref:`), or
// an existing Secret (`secret_name`/`secret_key`). The Job's name carries a hash of everything
// it applies except secret values, so a change re-creates it (a new secret value alone does
// not: change its ref path, or delete the Job to re-run it).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = a.params;
local name = 'airflow-objects';
local secretsDir = '/opt/airflow/object-secrets';
local specDir = '/opt/airflow/objects';

// Every secret value, by the file it becomes: refs/<ref path with / as __>, or
// secrets/<Secret>/<key>.
local fileOf(v) = if std.objectHas(v, 'ref') then 'ref-' + std.strReplace(v.ref, '/', '__') else 'secret-' + v.secret_name + '-' + v.secret_key;
local secretValues =
  [c.password for c in std.objectValues(p.connections) if std.objectHas(c, 'password')]
  + [v.secret for v in std.objectValues(p.variables) if std.objectHas(v, 'secret')];
local refs = { [fileOf(v)]: v.ref for v in secretValues if std.objectHas(v, 'ref') };
local existing = { [fileOf(v)]: v for v in secretValues if !std.objectHas(v, 'ref') };

local spec = {
  connections: {
    [id]: { [f]: p.connections[id][f] for f in std.objectFields(p.connections[id]) if f != 'password' }
          + (if std.objectHas(p.connections[id], 'password') then { password_file: secretsDir + '/' + fileOf(p.connections[id].password) } else {})
    for id in std.objectFields(p.connections)
  },
  variables: {
    [key]: (if std.objectHas(p.variables[key], 'secret') then { value_file: secretsDir + '/' + fileOf(p.variables[key].secret) } else { value: p.variables[key].value })
           + (if std.objectHas(p.variables[key], 'description') then { description: p.variables[key].description } else {})
    for key in std.objectFields(p.variables)
  },
  pools: p.pools,
};
local specJson = std.manifestJsonEx(spec, '  ') + '\n';

// Reads the spec and the secret files, writes Airflow's import formats into /tmp (a memory
// volume) and imports them; each import overwrites what exists and is idempotent.
local script = |||
  import json, os, subprocess, sys

  spec = json.load(open(sys.argv[1]))
  work_dir = sys.argv[2]  # private, memory-backed: the import files hold secret values

  def read(path):
      # A file written by an editor or `echo` ends with a newline that is not part of the value.
      with open(path) as f:
          return f.read().removesuffix("\n")

  connections = {}
  for conn_id, c in spec["connections"].items():
      c = dict(c)
      if "password_file" in c:
          c["password"] = read(c.pop("password_file"))
      if "extra" in c:
          c["extra"] = json.dumps(c["extra"], sort_keys=True)
      connections[conn_id] = c
  variables = {}
  for key, v in spec["variables"].items():
      value = read(v["value_file"]) if "value_file" in v else v["value"]
      # A mapping with "value" and "description" is read as both (a plain string is the value).
      variables[key] = {"value": value, "description": v["description"]} if "description" in v else value
  pools = {name: {"slots": p["slots"], "description": p.get("description", ""),
                  "include_deferred": p.get("include_deferred", False)} for name, p in spec["pools"].items()}

  def run_import(kind, data, *flags):
      if not data:
          return
      path = os.path.join(work_dir, kind + ".json")
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
      with os.fdopen(fd, "w") as f:
          json.dump(data, f)
      try:
          subprocess.run(["airflow", kind, "import", *flags, path], check=True)
      finally:
          os.remove(path)
      print(f"applied {len(data)} {kind}", flush=True)

  run_import("connections", connections, "--overwrite")
  run_import("variables", variables, "--action-on-existing-key", "overwrite")
  run_import("pools", pools)
|||;

local volume = {
  name: 'object-secrets',
  projected: {
    defaultMode: 288,
    sources:
      (if refs == {} then [] else [{ secret: { name: name, items: [{ key: f, path: f } for f in std.objectFields(refs)] } }])
      + [{ secret: { name: existing[f].secret_name, items: [{ key: existing[f].secret_key, path: f }] } } for f in std.objectFields(existing)],
  },
};

local container =
  a.container('apply', ['python', specDir + '/apply.py', specDir + '/objects.json', '/tmp/objects'], p.migrations.resources,
              // Importing connections and variables encrypts them.
              ['database', 'fernet-key'])
  + k.container.withVolumeMounts(a.baseMounts + [
    k.container.mount('objects', specDir, readOnly=true),
    k.container.mount('objects-tmp', '/tmp/objects'),
  ] + (if secretValues == [] then [] else [k.container.mount('object-secrets', secretsDir, readOnly=true)]));

local pod =
  k.podSpec.new([container], name)
  + k.podSpec.withInitContainers([a.waitForMigrations])
  + k.podSpec.withVolumes(a.baseVolumes + [
    a.secretsVolume(container.secretNeeds),
    k.volume.configMap('objects', name),
    k.volume.emptyDir('objects-tmp', medium='Memory', sizeLimit='16Mi'),
  ] + (if secretValues == [] then [] else [volume]))
  + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
  + a.placement({}, a.selectorLabels('airflow-objects'))
  + k.podSpec.withImagePullSecrets(p.image.pull_secrets);

local hash = std.substr(kap.sha256(a.image + '|' + specJson + '|' + script + '|' + std.manifestJsonMinified(pod)), 0, 10);

// Written once with `kapitan refs --write base64:targets/<env>/<ref> -f FILE` (see README).
local refSecret = a.userRefSecret(name, refs, 'airflow-objects');

k.files([
  k.configMap.new(name, a.namespace, { 'objects.json': specJson, 'apply.py': script }) + k.configMap.withLabels(a.labels('airflow-objects')),
  refSecret,
  a.serviceAccount(name, 'airflow-objects'),
  k.job.new('airflow-objects-' + hash, a.namespace, pod)
  + k.job.withBackoffLimit(3)
  + k.job.withLabels(a.labels('airflow-objects'))
  + k.job.withPodLabels(a.labels('airflow-objects'))
  // As for the migration Job: Flux re-creates it instead of patching an immutable template.
  + k.job.withAnnotations({ 'kustomize.toolkit.fluxcd.io/force': 'enabled' }),
])
