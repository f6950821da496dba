// Scheduled maintenance (parameters.airflow.housekeeping): `airflow db clean` keeps the
// metadata database from growing without end; `airflow kubernetes cleanup-pods` deletes worker
// pods the scheduler left behind (KubernetesExecutor). Log files are groomed by the log-groomer
// sidecars (airflow.libsonnet).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local h = p.housekeeping;
local name = 'airflow-housekeeping';
local cleanupName = 'airflow-cleanup-pods';

local pod(container, serviceAccount, volumes, apiAccess=false) =
  k.podSpec.new([container], serviceAccount)
  + k.podSpec.withVolumes(volumes)
  + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
  + k.podSpec.withServiceAccountToken(apiAccess)
  + a.placement({}, a.selectorLabels('housekeeping'))
  + k.podSpec.withImagePullSecrets(p.image.pull_secrets);

// Deletes rows older than retention_days from every table `db clean` knows; no archive tables
// (they would hold the same data again).
local dbClean =
  a.container('db-clean', [
    'bash', '-c',
    'exec airflow db clean --clean-before-timestamp "$(date -u -d "-' + h.db_clean.retention_days
    + ' days" +%Y-%m-%dT%H:%M:%S+00:00)" --skip-archive --yes',
  ], h.db_clean.resources, ['database'], direct=true)
  + k.container.withVolumeMounts(a.baseMounts);

// It talks to the Kubernetes API only: no database, no secret, just airflow.cfg.
local cleanupPods =
  k.container.new('cleanup-pods', a.image, p.image.pull_policy)
  + k.container.withArgs(['kubernetes', 'cleanup-pods', '--namespace', a.namespace])
  + k.container.withEnv(a.processEnv)
  + k.container.withVolumeMounts(a.configMounts)
  + k.container.withResources(h.cleanup_pods.resources)
  + a.securityContext();

local cronJob(jobName, schedule, podSpec) =
  k.cronJob.new(jobName, a.namespace, schedule, podSpec)
  + k.cronJob.withLabels(a.labels('housekeeping'))
  + k.cronJob.withPodLabels(a.labels('housekeeping'));

local withDbClean = h.db_clean.enabled;
local withCleanupPods = h.cleanup_pods.enabled && a.isKubernetesExecutor;

k.files(
  (if withDbClean then [
     cronJob('airflow-db-clean', h.db_clean.schedule, pod(dbClean, name, a.baseVolumes + [a.secretsVolume(dbClean.secretNeeds)])),
     a.serviceAccount(name, 'housekeeping'),
   ] else [])
  + (if withCleanupPods then [
       cronJob(cleanupName, h.cleanup_pods.schedule, pod(cleanupPods, cleanupName, a.configVolumes, apiAccess=true)),
       a.serviceAccount(cleanupName, 'housekeeping', true),
       k.rbac.role(cleanupName, a.namespace, [k.rbac.rule([''], ['pods'], ['delete', 'get', 'list'])])
       + k.object.withLabels(a.labels('housekeeping')),
       k.rbac.roleBinding(cleanupName, a.namespace, cleanupName, cleanupName) + k.object.withLabels(a.labels('housekeeping')),
     ] else [])
)
