// How DAGs reach the pods that parse or run them (parameters.airflow.dags.mode):
//   git-sync  an emptyDir filled by git-sync (init container + sidecar)
//   bundle    Airflow 3's own Git DAG bundle, cloned by Airflow into /tmp
//   pvc       an existing ReadWriteMany claim, mounted read-only
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';

local p = e.params;
local paths = e.paths;
local isBundle = e.isBundle;

local dagsFolder =
  if p.dags.mode == 'git-sync' then
    std.join('/', [paths.dagsMount, 'repo'] + (if p.dags.git_sync.sub_path == '' then [] else [p.dags.git_sync.sub_path]))
  else if isBundle then
    // Not parsed in bundle mode (the bundle list below replaces the dags-folder bundle): the
    // image's own, empty, DAG folder.
    paths.dagsMount
  else
    std.join('/', [paths.dagsMount] + (if p.dags.pvc.sub_path == '' then [] else [p.dags.pvc.sub_path]));

// dags.mode bundle: Airflow 3's GitDagBundle (apache-airflow-providers-git, in the official image)
// clones dags.git_sync.repo at dags.git_sync.ref itself, in every pod that parses or runs DAGs:
// the dag-processor, the scheduler with the LocalExecutor and KubernetesExecutor worker pods.
// The repository URL reaches Airflow as a connection in an environment variable; credentials
// come from dags.git_sync.credentials_secret, never from Git.
local bundle = {
  local g = p.dags.git_sync,
  name: 'dags',
  connId: 'dags_git',
  // Airflow's default is tempfile.gettempdir()/airflow/dag_bundles: set it so that it cannot
  // move off the /tmp emptyDir (the root filesystem is read-only).
  storagePath: '/tmp/airflow/dag_bundles',
  // How often the bundle fetches: git-sync's period, in whole seconds (at least 1).
  local unit = if std.endsWith(g.period, 'ms') then 'ms' else g.period[std.length(g.period) - 1],
  local amount = std.parseInt(std.substr(g.period, 0, std.length(g.period) - std.length(unit))),
  refreshInterval: std.max(1, if unit == 'ms' then std.ceil(amount / 1000) else amount * { s: 1, m: 60, h: 3600 }[unit]),
  configList: std.manifestJsonMinified([{
    name: $.name,
    classpath: 'airflow.providers.git.bundles.git.GitDagBundle',
    kwargs: {
      git_conn_id: $.connId,
      tracking_ref: g.ref,
      refresh_interval: $.refreshInterval,
    } + (if g.sub_path == '' then {} else { subdir: g.sub_path }),
  }]),
  // GitHook reads host (the URL), login/password (https) and the extras key_file,
  // strict_host_key_checking and known_hosts_file (ssh). Host keys are always checked.
  // Kubernetes expands $(VAR) from variables defined before this one in the same container.
  connection: {
    conn_type: 'git',
    host: g.repo,
    extra: { strict_host_key_checking: 'yes' }
           + (if g.auth == 'ssh' then {
                key_file: paths.gitCredentials + '/ssh',
                known_hosts_file: paths.gitKnownHosts + '/known_hosts',
              } else {}),
  } + (if g.auth == 'https' then { login: '$(DAGS_GIT_USERNAME)', password: '$(DAGS_GIT_PASSWORD)' } else {}),
  env:
    (if g.auth == 'https' then [
       k.container.envSecret('DAGS_GIT_USERNAME', g.credentials_secret, 'GITSYNC_USERNAME'),
       k.container.envSecret('DAGS_GIT_PASSWORD', g.credentials_secret, 'GITSYNC_PASSWORD'),
     ] else [])
    + [k.container.envValue('AIRFLOW_CONN_' + std.asciiUpper($.connId), std.manifestJsonMinified($.connection))],
};

// The git-sync credentials Secret and known_hosts ConfigMap (auth https credentials reach the
// bundle's connection through secretKeyRef instead of a volume).
local gitAuthVolumes(g) =
  (if g.auth == 'none' then [] else [k.volume.secret('git-sync-credentials', g.credentials_secret)])
  + (if g.auth == 'ssh' then [k.volume.configMap('git-sync-known-hosts', e.names.gitSyncKnownHosts)] else []);

local gitSyncHttpPort = 8081;

{
  dagsFolder: dagsFolder,
  bundle: bundle,

  dagsVolumes:
    if p.dags.mode == 'git-sync' then
      [k.volume.emptyDir('dags')] + gitAuthVolumes(p.dags.git_sync)
    else if isBundle then
      (if p.dags.git_sync.auth == 'ssh' then gitAuthVolumes(p.dags.git_sync) else [])
    else [k.volume.pvc('dags', p.dags.pvc.claim_name, readOnly=true)],

  dagsMounts:
    if isBundle then
      (if p.dags.git_sync.auth == 'ssh' then [
         k.container.mount('git-sync-credentials', paths.gitCredentials, readOnly=true),
         k.container.mount('git-sync-known-hosts', paths.gitKnownHosts, readOnly=true),
       ] else [])
    else [k.container.mount('dags', paths.dagsMount, readOnly=true)],

  // What a container that parses or runs DAGs needs besides its mounts: the bundle's connection.
  dagsEnv: if isBundle then bundle.env else [],

  // git-sync as an init container (`oneTime`) or a sidecar.
  gitSync(name, oneTime)::
    local g = p.dags.git_sync;
    k.container.new(name, g.image.repository + ':' + g.image.tag, p.image.pull_policy)
    + k.container.withEnv([
      k.container.envValue('GITSYNC_REPO', g.repo),
      k.container.envValue('GITSYNC_REF', g.ref),
      k.container.envValue('GITSYNC_DEPTH', g.depth),
      k.container.envValue('GITSYNC_ROOT', '/git'),
      k.container.envValue('GITSYNC_LINK', 'repo'),
      k.container.envValue('GITSYNC_MAX_FAILURES', g.max_failures),
    ]
    + (if oneTime then [k.container.envValue('GITSYNC_ONE_TIME', 'true')] else [
         k.container.envValue('GITSYNC_PERIOD', g.period),
         // git-sync's HTTP endpoint answers 5xx until the first sync is done, 200 after.
         k.container.envValue('GITSYNC_HTTP_BIND', ':' + gitSyncHttpPort),
       ])
    + (if g.auth == 'https' then [
         k.container.envSecret('GITSYNC_USERNAME', g.credentials_secret, 'GITSYNC_USERNAME'),
         k.container.envSecret('GITSYNC_PASSWORD', g.credentials_secret, 'GITSYNC_PASSWORD'),
       ] else [])
    + (if g.auth == 'ssh' then [
         k.container.envValue('GITSYNC_SSH_KEY_FILE', '/etc/git-secret/ssh'),
         // Host keys are always checked: known_hosts comes from the inventory.
         k.container.envValue('GITSYNC_SSH_KNOWN_HOSTS', 'true'),
         k.container.envValue('GITSYNC_SSH_KNOWN_HOSTS_FILE', '/etc/git-known-hosts/known_hosts'),
       ] else []))
    + k.container.withVolumeMounts(
      [k.container.mount('dags', '/git'), k.container.mount('tmp', '/tmp')]
      + (if g.auth == 'ssh' then [
           k.container.mount('git-sync-credentials', '/etc/git-secret/ssh', readOnly=true, subPath='ssh'),
           k.container.mount('git-sync-known-hosts', '/etc/git-known-hosts', readOnly=true),
         ] else [])
    )
    + (if oneTime then {} else
         k.container.withPorts([k.container.containerPort('git-sync', gitSyncHttpPort)])
         + k.container.withProbes(
           readiness=k.probe.http('/', 'git-sync', periodSeconds=10),
           liveness=k.probe.http('/', 'git-sync', periodSeconds=30, failureThreshold=5),
           // A first clone of a large repository may take minutes.
           startup=k.probe.http('/', 'git-sync', periodSeconds=10, failureThreshold=60),
         ))
    + k.container.withResources(g.resources)
    // git-sync's image runs as uid 65533, which its /etc/passwd knows (so no --add-user, which
    // would need a writable root filesystem); it writes only to its volume.
    + k.container.withRestrictedSecurityContext(65533, 65533, true),
}
