// What every Airflow pod of an environment shares: names, labels, the generated airflow.cfg,
// secrets as Kapitan ref tags, volumes, the migration wait, the git-sync containers and the Git
// DAG bundle's connection.
local k = import 'k8s.libsonnet';
local inv = import 'inventory.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = inv.airflow;
local env = p.environment;
local ns = p.namespace;

// Refs are generated once on first compile (||random) and committed under kapitan/refs;
// compiled/ only ever holds the tag, revealed at apply time.
local ref(name, generator='random:str:43') = '?{base64:targets/%s/%s||%s}' % [env, name, generator];

local paths = {
  home: '/opt/airflow',
  config: '/opt/airflow/airflow.cfg',
  logs: '/opt/airflow/logs',
  dagsMount: '/opt/airflow/dags',
  podTemplates: '/opt/airflow/pod_templates',
  auth: '/opt/airflow/auth',
  // The Secrets' values as files (never environment variables, which every child process,
  // `kubectl describe` and crash reports would see); Airflow reads them with `_CMD` options.
  secrets: '/opt/airflow/secrets',
  passwordsFile: '/opt/airflow/auth/simple_auth_manager_passwords.json',
  // dags.mode bundle with auth ssh: the credentials Secret and the known_hosts ConfigMap.
  gitCredentials: '/opt/airflow/git-credentials',
  gitKnownHosts: '/opt/airflow/git-known-hosts',
};

local names = {
  config: 'airflow-config',
  podTemplate: 'airflow-pod-template',
  secrets: 'airflow-secrets',
  metadataDb: if p.database.mode == 'bundled' then 'airflow-metadata-db' else p.database.external.secret_name,
  metadataDbKey: p.database.external.secret_key,
  adminPasswords: 'airflow-admin-passwords',
  postgres: 'airflow-postgres',
  apiServer: 'airflow-api-server',
  scheduler: 'airflow-scheduler',
  dagProcessor: 'airflow-dag-processor',
  triggerer: 'airflow-triggerer',
  worker: 'airflow-worker',
  gitSyncKnownHosts: 'airflow-git-sync-known-hosts',
  logsPvc: 'airflow-logs',
};

local isBundle = p.dags.mode == 'bundle';

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

local isKubernetesExecutor = p.executor == 'KubernetesExecutor';

local image = '%s:%s' % [p.image.repository, p.image.tag];

local apiServerUrl = 'http://%s.%s.svc.cluster.local:%d' % [names.apiServer, ns, p.api_server.service.port];

// Settings derived from other parameters; the user's free-form config is merged over them
// (keys that must not be overridden are refused by inventory.libsonnet).
local derivedConfig = {
  core: {
    executor: p.executor,
    dags_folder: dagsFolder,
    execution_api_server_url: apiServerUrl + '/execution/',
    simple_auth_manager_passwords_file: paths.passwordsFile,
  },
  database: { check_migrations: 'True' },
  logging: { base_log_folder: paths.logs },
  // base_url is the address people use (links in alerts, login redirects): only the user knows it.
  api: { workers: p.api_server.workers, port: p.api_server.port }
       + (if p.api_server.base_url == '' then {} else { base_url: p.api_server.base_url }),
  scheduler: { enable_health_check: 'True', scheduler_health_check_server_port: 8974 },
} + (
  if isBundle then {
    dag_processor: { dag_bundle_config_list: bundle.configList, dag_bundle_storage_path: bundle.storagePath },
  } else {}
) + (
  if isKubernetesExecutor then {
    kubernetes_executor: {
      namespace: ns,
      pod_template_file: paths.podTemplates + '/pod_template.yaml',
      worker_container_repository: p.image.repository,
      worker_container_tag: p.image.tag,
    },
  } else {}
);

local config = std.foldl(
  function(acc, section) acc { [section]+: p.config[section] },
  std.objectFields(p.config),
  derivedConfig
);

local iniValue(v) =
  if std.isBoolean(v) then (if v then 'True' else 'False') else std.toString(v);

// Plain concatenation: go-jsonnet implements `%` formatting in Jsonnet, and it showed up as the
// single largest cost of a compile.
local renderIni(cfg) =
  std.join('\n', [
    std.join('\n', ['[' + section + ']'] + [key + ' = ' + iniValue(cfg[section][key]) for key in std.objectFields(cfg[section])])
    for section in std.objectFields(cfg)
  ]) + '\n';

local airflowCfg = '# Generated by Kapitan from inventory/targets/%s.yml. Do not edit: change the inventory.\n' % env + renderIni(config);

local labels(component) = {
  'app.kubernetes.io/name': 'airflow',
  'app.kubernetes.io/instance': env,
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/part-of': 'airflow',
  'app.kubernetes.io/version': p.version,
  'app.kubernetes.io/managed-by': 'kapitan',
} + p.labels;

local selectorLabels(component) = {
  'app.kubernetes.io/name': 'airflow',
  'app.kubernetes.io/instance': env,
  'app.kubernetes.io/component': component,
};

local secretsData = {
  // random:str draws from the URL-safe base64 alphabet: 43 characters and '=' decode to the
  // 32 bytes a Fernet key needs.
  'fernet-key': ref('fernet_key') + '=',
  'api-secret-key': ref('api_secret_key'),
  'jwt-secret': ref('jwt_secret'),
};

local adminPassword = ref('admin_password', 'random:str:24');

local postgresPassword = ref('postgres_password', 'random:str:32');

// Secrets hold single values only; the bundled database's URL is composed when Airflow reads it
// (`sh -c` with the password file), so no Secret mixes a value with text.
local secretFile(name) = paths.secrets + '/' + name;
local readSecret(name) = 'cat ' + secretFile(name);
local databaseEnv =
  if p.database.mode == 'bundled' then [
    k.container.envValue('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', "sh -c 'printf \"postgresql+psycopg2://%s:%%s@%s.%s.svc.cluster.local:5432/%s\" \"$(cat %s)\"'" % [
      p.database.bundled.user, names.postgres, ns, p.database.bundled.database, secretFile('database-password'),
    ]),
  ] else [
    k.container.envValue('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD', readSecret('sql-alchemy-conn')),
  ];

// One read-only volume with every value an Airflow process needs (mode 0440, group fsGroup).
local secretsVolume = {
  name: 'secrets',
  projected: {
    defaultMode: 288,
    sources: [
      { secret: { name: names.secrets, items: [{ key: key, path: key } for key in ['fernet-key', 'api-secret-key', 'jwt-secret']] } },
      { secret: { name: names.metadataDb, items: [
        if p.database.mode == 'bundled' then { key: 'password', path: 'database-password' }
        else { key: names.metadataDbKey, path: 'sql-alchemy-conn' },
      ] } },
    ],
  },
};
local secretsMount = k.container.mount('secrets', paths.secrets, readOnly=true);

local securityContext(readOnly=p.security.read_only_root_filesystem) =
  k.container.withRestrictedSecurityContext(p.security.run_as_user, p.security.run_as_group, readOnly);

// Environment every Airflow process that touches the metadata database gets.
local coreEnv = [
  k.container.envValue('AIRFLOW_HOME', paths.home),
  // The image entrypoint would poll the database itself; the wait-for-migrations init container does that.
  k.container.envValue('CONNECTION_CHECK_MAX_COUNT', 0),
  k.container.envValue('PYTHONDONTWRITEBYTECODE', 1),
] + databaseEnv + [
  k.container.envValue('AIRFLOW__CORE__FERNET_KEY_CMD', readSecret('fernet-key')),
  k.container.envValue('AIRFLOW__API__SECRET_KEY_CMD', readSecret('api-secret-key')),
  k.container.envValue('AIRFLOW__API_AUTH__JWT_SECRET_CMD', readSecret('jwt-secret')),
];

local baseVolumes = [
  k.volume.configMap('config', names.config, [{ key: 'airflow.cfg', path: 'airflow.cfg' }]),
  k.volume.emptyDir('tmp'),
  if p.logs.persistence == 'pvc' then k.volume.pvc('logs', names.logsPvc) else k.volume.emptyDir('logs'),
];

local baseMounts = [
  k.container.mount('config', paths.config, readOnly=true, subPath='airflow.cfg'),
  k.container.mount('tmp', '/tmp'),
  k.container.mount('logs', paths.logs),
];

// The git-sync credentials Secret and known_hosts ConfigMap (auth https credentials reach the
// bundle's connection through secretKeyRef instead of a volume).
local gitAuthVolumes(g) =
  (if g.auth == 'none' then [] else [k.volume.secret('git-sync-credentials', g.credentials_secret)])
  + (if g.auth == 'ssh' then [k.volume.configMap('git-sync-known-hosts', names.gitSyncKnownHosts)] else []);

local dagsVolumes =
  if p.dags.mode == 'git-sync' then
    [k.volume.emptyDir('dags')] + gitAuthVolumes(p.dags.git_sync)
  else if isBundle then
    (if p.dags.git_sync.auth == 'ssh' then gitAuthVolumes(p.dags.git_sync) else [])
  else [k.volume.pvc('dags', p.dags.pvc.claim_name, readOnly=true)];

local dagsMounts =
  if isBundle then
    (if p.dags.git_sync.auth == 'ssh' then [
       k.container.mount('git-sync-credentials', paths.gitCredentials, readOnly=true),
       k.container.mount('git-sync-known-hosts', paths.gitKnownHosts, readOnly=true),
     ] else [])
  else [k.container.mount('dags', paths.dagsMount, readOnly=true)];

// What a container that parses or runs DAGs needs besides its mounts: the bundle's connection.
local dagsEnv = if isBundle then bundle.env else [];

local gitSyncHttpPort = 8081;
local gitSync(name, oneTime) =
  local g = p.dags.git_sync;
  k.container.new(name, '%s:%s' % [g.image.repository, g.image.tag], p.image.pull_policy)
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
       k.container.envValue('GITSYNC_HTTP_BIND', ':%d' % gitSyncHttpPort),
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
  + k.container.withRestrictedSecurityContext(65533, 65533, true);

local waitForMigrations =
  k.container.new('wait-for-migrations', image, p.image.pull_policy)
  + k.container.withArgs(['db', 'check-migrations', '--migration-wait-timeout', std.toString(p.migrations.wait_timeout)])
  + k.container.withEnv(coreEnv)
  + k.container.withVolumeMounts(baseMounts + [secretsMount])
  + k.container.withResources(p.migrations.resources)
  + securityContext();

// Worker pods of the KubernetesExecutor: container "base" runs the task; the task talks to the
// Execution API with a token from the scheduler, so it gets no database or signing secret.
local podTemplate = {
  local g = p.workers,
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'airflow-worker-template', labels: labels('worker') },
  spec:
    k.podSpec.new([
      k.container.new('base', image, p.image.pull_policy)
      + k.container.withEnv([
        k.container.envValue('AIRFLOW_HOME', paths.home),
        // Workers have no database: the image entrypoint must not wait for one (it would check
        // the default SQLite path and fail the pod after 20 tries).
        k.container.envValue('CONNECTION_CHECK_MAX_COUNT', 0),
        k.container.envValue('PYTHONDONTWRITEBYTECODE', 1),
      ] + dagsEnv)
      + k.container.withVolumeMounts(baseMounts + dagsMounts)
      + k.container.withResources(g.resources)
      + securityContext(),
    ], names.worker)
    + { restartPolicy: 'Never' }
    + (if p.dags.mode == 'git-sync' then k.podSpec.withInitContainers([gitSync('git-sync-init', true)]) else {})
    + k.podSpec.withVolumes(baseVolumes + dagsVolumes)
    + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
    + k.podSpec.withServiceAccountToken(g.automount_service_account_token)
    + k.podSpec.withPlacement(g.node_selector, g.tolerations, g.affinity)
    + k.podSpec.withImagePullSecrets(p.image.pull_secrets),
};

// Jsonnet's own YAML (values quoted): the native PyYAML dump cost more than the rest of the file.
local podTemplateYaml = std.manifestYamlDoc(podTemplate, indent_array_in_object=true, quote_keys=false) + '\n';

// A change of airflow.cfg rolls every pod that reads it.
local checksums = { 'checksum/airflow-config': kap.sha256(airflowCfg) };

{
  params: p,
  env: env,
  namespace: ns,
  image: image,
  names: names,
  paths: paths,
  ref: ref,
  labels: labels,
  selectorLabels: selectorLabels,
  airflowCfg: airflowCfg,
  config: config,
  dagsFolder: dagsFolder,
  isBundle: isBundle,
  bundle: bundle,
  isKubernetesExecutor: isKubernetesExecutor,
  apiServerUrl: apiServerUrl,
  secretsData: secretsData,
  adminPassword: adminPassword,
  postgresPassword: postgresPassword,
  coreEnv: coreEnv,
  secretsVolume: secretsVolume,
  secretsMount: secretsMount,
  baseVolumes: baseVolumes,
  baseMounts: baseMounts,
  dagsVolumes: dagsVolumes,
  dagsMounts: dagsMounts,
  dagsEnv: dagsEnv,
  gitSync: gitSync,
  waitForMigrations: waitForMigrations,
  securityContext: securityContext,
  checksums: checksums,
  podTemplate: podTemplate,
  podTemplateYaml: podTemplateYaml,
  podTemplateChecksum: kap.sha256(podTemplateYaml),

  // Liveness of a job-based component: its heartbeat in the metadata database.
  jobCheckProbe(jobType, periodSeconds=60)::
    k.probe.exec(['airflow', 'jobs', 'check', '--job-type', jobType, '--local'], periodSeconds=periodSeconds, timeoutSeconds=30, failureThreshold=5),

  // An Airflow container running `airflow <args>`.
  container(name, args, resources)::
    k.container.new(name, image, p.image.pull_policy)
    + k.container.withArgs(args)
    + k.container.withEnv(coreEnv)
    + k.container.withVolumeMounts([secretsMount])
    + k.container.withResources(resources)
    + securityContext(),

  // A long-running Airflow component: Deployment, ServiceAccount and optional PDB.
  // `needsDags` adds the DAG volume (and the git-sync sidecar in git-sync mode), or in bundle
  // mode the bundle's connection (and SSH key and known_hosts mounts).
  component(component, name, params, mainContainer, needsDags=false, extraVolumes=[], extraInitContainers=[], apiAccess=false)::
    local withGitSync = needsDags && p.dags.mode == 'git-sync';
    local main = mainContainer + k.container.withVolumeMounts(baseMounts + (if needsDags then dagsMounts else []))
                 + (if needsDags && dagsEnv != [] then k.container.withEnv(dagsEnv) else {});
    local pod =
      k.podSpec.new([main] + (if withGitSync then [gitSync('git-sync', false)] else []), name)
      + k.podSpec.withInitContainers([waitForMigrations] + (if withGitSync then [gitSync('git-sync-init', true)] else []) + extraInitContainers)
      + k.podSpec.withVolumes(baseVolumes + [secretsVolume] + (if needsDags then dagsVolumes else []) + extraVolumes)
      + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
      + k.podSpec.withServiceAccountToken(apiAccess)
      + k.podSpec.withPlacement(params.node_selector, params.tolerations, params.affinity)
      + k.podSpec.withImagePullSecrets(p.image.pull_secrets)
      + k.podSpec.withTerminationGracePeriod(60);
    local deployment =
      k.deployment.new(name, ns, params.replicas, selectorLabels(component), pod)
      + k.deployment.withLabels(labels(component))
      + k.deployment.withPodLabels(labels(component))
      + k.deployment.withPodAnnotations(checksums)
      + k.deployment.withRollingUpdate(0, 1);
    [
      deployment,
      k.serviceAccount.new(name, ns, apiAccess) + k.serviceAccount.withLabels(labels(component)),
      if params.pdb.enabled then
        k.pdb.new(name, ns, selectorLabels(component), params.pdb.min_available) + k.pdb.withLabels(labels(component))
      else null,
    ],
}
