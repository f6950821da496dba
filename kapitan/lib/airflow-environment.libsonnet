// Who an environment is: its validated parameters, namespace, object names, file paths inside
// the Airflow image, labels and the executors it runs. Every other Airflow library starts here.
local inv = import 'inventory.libsonnet';

local p = inv.airflow;
local env = p.environment;
local ns = p.namespace;

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
  celerySecrets: 'airflow-celery',
  celeryWorker: 'airflow-celery-worker',
  flower: 'airflow-flower',
  redis: 'airflow-redis',
  pgbouncer: 'airflow-pgbouncer',
  statsd: 'airflow-statsd',
};

// `executor` names one executor or two (Airflow 3's multiple executors: the first is the default).
local executors = std.split(p.executor, ',');

{
  params: p,
  env: env,
  namespace: ns,
  paths: paths,
  names: names,
  image: p.image.repository + ':' + p.image.tag,
  executors: executors,
  isKubernetesExecutor: std.member(executors, 'KubernetesExecutor'),
  isCeleryExecutor: std.member(executors, 'CeleryExecutor'),
  isLocalExecutor: std.member(executors, 'LocalExecutor'),
  isBundle: p.dags.mode == 'bundle',
  apiServerUrl: 'http://' + names.apiServer + '.' + ns + '.svc.cluster.local:' + p.api_server.service.port,
  // Annotations of what holds data (the namespace, claims): neither engine prunes it when it
  // leaves Git, nor deletes it with the environment (Argo CD Application deleted, Flux
  // Kustomization pruned).
  keepOnRemoval: {
    'kustomize.toolkit.fluxcd.io/prune': 'disabled',
    'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false',
  },

  // A secret's file in the `secrets` volume (secrets.libsonnet).
  secretFile(name):: paths.secrets + '/' + name,
  // The `_CMD` command printing that file's value as it is.
  catSecret(name):: 'cat ' + paths.secrets + '/' + name,

  labels(component):: {
    'app.kubernetes.io/name': 'airflow',
    'app.kubernetes.io/instance': env,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'airflow',
    'app.kubernetes.io/version': p.version,
    'app.kubernetes.io/managed-by': 'kapitan',
  } + p.labels,

  selectorLabels(component):: {
    'app.kubernetes.io/name': 'airflow',
    'app.kubernetes.io/instance': env,
    'app.kubernetes.io/component': component,
  },
}
