// How an Airflow pod is built: the environment, volumes and security context every Airflow
// container gets, the migration wait, the log groomer, the KubernetesExecutor's pod template
// and `component`, the long-running workload with its ServiceAccount and PodDisruptionBudget.
local config = import 'config.libsonnet';
local dags = import 'dags.libsonnet';
local database = import 'database.libsonnet';
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';
local obs = import 'observability.libsonnet';
local secrets = import 'secrets.libsonnet';

local p = e.params;
local paths = e.paths;
local names = e.names;
local image = e.image;
local labels = e.labels;
local selectorLabels = e.selectorLabels;
local remoteCredentials = obs.remoteCredentials;

local securityContext(readOnly=p.security.read_only_root_filesystem) =
  k.container.withRestrictedSecurityContext(p.security.run_as_user, p.security.run_as_group, readOnly);

// Environment of every container running the Airflow image. The image's entrypoint would poll
// the database before starting anything: the wait-for-migrations init container does that
// where there is a database, and the other containers (worker pods, sidecars) have none.
local processEnv = [
  k.container.envValue('AIRFLOW_HOME', paths.home),
  k.container.envValue('CONNECTION_CHECK_MAX_COUNT', 0),
  k.container.envValue('PYTHONDONTWRITEBYTECODE', 1),
];

// The `_CMD` options that make an Airflow process read what it `needs` from the secrets volume
// (secrets.libsonnet says which files each need is). Checked in Airflow 3.3.2's code:
//   database        [database] sql_alchemy_conn: every process using the metadata database
//   fernet-key      [core] fernet_key: who encrypts or decrypts connections, variables and
//                   trigger arguments (api-server, scheduler, dag-processor, triggerer, imports)
//   api-secret-key  [api] secret_key: signs log-fetching tokens (api-server), checks them where
//                   logs are served (triggerer, Celery workers, a LocalExecutor scheduler)
//   jwt-secret      [api_auth] jwt_secret: signs and checks Execution API and UI tokens
//                   (api-server), signs workload tokens (scheduler); never where tasks run
//   broker, result-backend  the CeleryExecutor's broker_url and result_backend
local secretEnv(needs, direct) =
  local has(n) = std.member(needs, n);
  (if has('database') then database.sqlAlchemyConnEnv(direct) else [])
  + (if has('broker') then database.brokerUrlEnv else [])
  + (if has('result-backend') then database.resultBackendEnv(direct) else [])
  + (if has('fernet-key') then [k.container.envValue('AIRFLOW__CORE__FERNET_KEY_CMD', e.catSecret('fernet-key'))] else [])
  + (if has('api-secret-key') then [k.container.envValue('AIRFLOW__API__SECRET_KEY_CMD', e.catSecret('api-secret-key'))] else [])
  + (if has('jwt-secret') then [k.container.envValue('AIRFLOW__API_AUTH__JWT_SECRET_CMD', e.catSecret('jwt-secret'))] else []);
local airflowEnv(needs, direct=false) = processEnv + secretEnv(needs, direct) + remoteCredentials.env + obs.otelEnv;

// airflow.cfg and a writable /tmp: what any Airflow command needs.
local configVolumes = [
  k.volume.configMap('config', names.config, [{ key: 'airflow.cfg', path: 'airflow.cfg' }]),
  k.volume.emptyDir('tmp'),
];
local configMounts = [
  k.container.mount('config', paths.config, readOnly=true, subPath='airflow.cfg'),
  k.container.mount('tmp', '/tmp'),
];

local baseVolumes = configVolumes + [
  if p.logs.persistence == 'pvc' then k.volume.pvc('logs', names.logsPvc) else k.volume.emptyDir('logs'),
] + remoteCredentials.volumes;

local baseMounts = configMounts + [k.container.mount('logs', paths.logs)] + remoteCredentials.mounts;

// A run-once command's volumes (`airflow db migrate`): its own scratch logs directory, never the
// shared logs claim (it runs before any workload, when a WaitForFirstConsumer claim is unbound).
local standaloneVolumes = configVolumes + [k.volume.emptyDir('logs')];

// Node selection, spreading and priority of a component's pods (`params` is its inventory
// block; spreading and priority default to parameters.airflow.placement).
local placement(params, selector) =
  k.podSpec.withPlacement(std.get(params, 'node_selector', {}), std.get(params, 'tolerations', []), std.get(params, 'affinity', {}))
  + k.podSpec.withTopologySpread(std.get(params, 'topology_spread_keys', p.placement.topology_spread_keys), selector)
  + k.podSpec.withPriorityClass(std.get(params, 'priority_class_name', p.placement.priority_class_name));

// Deletes old task and component logs from the logs volume (the image's /clean-logs loop).
local logGroomer =
  local g = p.logs.groomer;
  k.container.new('log-groomer', image, p.image.pull_policy)
  + k.container.withArgs(['bash', '/clean-logs'])
  + k.container.withEnv(processEnv + [
    k.container.envValue('AIRFLOW__LOG_RETENTION_DAYS', g.retention_days),
    k.container.envValue('AIRFLOW__LOG_CLEANUP_FREQUENCY_MINUTES', g.frequency_minutes),
  ])
  + k.container.withVolumeMounts([k.container.mount('logs', paths.logs)])
  // Alive while the logs volume is still writable (a stale network volume restarts it).
  + k.container.withProbes(
    readiness=k.probe.exec(['test', '-w', paths.logs], periodSeconds=60, timeoutSeconds=10, failureThreshold=3),
    liveness=k.probe.exec(['test', '-w', paths.logs], periodSeconds=60, timeoutSeconds=10, failureThreshold=5),
  )
  + k.container.withResources(g.resources)
  + securityContext(true);

local waitForMigrations =
  k.container.new('wait-for-migrations', image, p.image.pull_policy)
  + k.container.withArgs(['db', 'check-migrations', '--migration-wait-timeout', std.toString(p.migrations.wait_timeout)])
  + k.container.withEnv(airflowEnv(['database']))
  + k.container.withVolumeMounts(baseMounts + [secrets.secretsMount])
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
      // Workers have no database: processEnv keeps the entrypoint from waiting for one (it would
      // check the default SQLite path and fail the pod after 20 tries).
      + k.container.withEnv(processEnv + remoteCredentials.env + obs.otelEnv + dags.dagsEnv + std.get(g, 'extra_env', []))
      + k.container.withVolumeMounts(baseMounts + dags.dagsMounts + std.get(g, 'extra_volume_mounts', []))
      + k.container.withResources(g.resources)
      + securityContext(),
    ] + std.get(g, 'extra_containers', []), names.worker)
    + { restartPolicy: 'Never' }
    + k.podSpec.withInitContainers((if p.dags.mode == 'git-sync' then [dags.gitSync('git-sync-init', true)] else []) + std.get(g, 'extra_init_containers', []))
    + k.podSpec.withVolumes(baseVolumes + dags.dagsVolumes + std.get(g, 'extra_volumes', []))
    + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
    + k.podSpec.withServiceAccountToken(g.automount_service_account_token)
    + placement(g, labels('worker'))
    + k.podSpec.withImagePullSecrets(p.image.pull_secrets),
};

// Jsonnet's own YAML (values quoted): the native PyYAML dump cost more than the rest of the file.
local podTemplateYaml = std.manifestYamlDoc(podTemplate, indent_array_in_object=true, quote_keys=false) + '\n';

{
  processEnv: processEnv,
  configVolumes: configVolumes,
  configMounts: configMounts,
  baseVolumes: baseVolumes,
  baseMounts: baseMounts,
  standaloneVolumes: standaloneVolumes,
  // The same paths as baseMounts, on standaloneVolumes.
  standaloneMounts: configMounts + [k.container.mount('logs', paths.logs)],
  waitForMigrations: waitForMigrations,
  logGroomer: logGroomer,
  placement: placement,
  securityContext: securityContext,
  podTemplate: podTemplate,
  podTemplateYaml: podTemplateYaml,
  podTemplateChecksum: kap.sha256(podTemplateYaml),

  // Liveness of a job-based component: its heartbeat in the metadata database.
  jobCheckProbe(jobType, periodSeconds=60)::
    k.probe.exec(['airflow', 'jobs', 'check', '--job-type', jobType, '--local'], periodSeconds=periodSeconds, timeoutSeconds=30, failureThreshold=5),
  // Until the job's first heartbeat (up to 5 min): liveness would otherwise fail its first check on
  // every start, before the job exists (seen with `airflow-gitops up`).
  jobStartupProbe(jobType)::
    k.probe.exec(['airflow', 'jobs', 'check', '--job-type', jobType, '--local'], periodSeconds=10, timeoutSeconds=30, failureThreshold=30),

  // An Airflow container running `airflow <args>` that reads the secrets it `needs` (see
  // secretEnv) and no others; `direct` connects to the database itself, not through PgBouncer.
  // The needs stay on the container (hidden) for the pod's volume and checksum.
  container(name, args, resources, needs, direct=false)::
    k.container.new(name, image, p.image.pull_policy)
    + k.container.withArgs(args)
    + k.container.withEnv(airflowEnv(needs, direct))
    + k.container.withVolumeMounts(if needs == [] then [] else [secrets.secretsMount])
    + k.container.withResources(resources)
    + securityContext()
    + { secretNeeds:: needs },

  // Read access to the namespace's pods and their logs for `name`'s ServiceAccount: the
  // api-server streams a running KubernetesExecutor task's log from its pod, the triggerer
  // follows the pods of deferred KubernetesPodOperator tasks. `deletePods`: the triggerer also
  // deletes such a pod when its task is cancelled (KubernetesPodTrigger.on_kill in Airflow 3.3),
  // which would otherwise keep running.
  podReader(name, component, deletePods=false)::
    [
      k.rbac.role(name, e.namespace, [
        k.rbac.rule([''], ['pods'], ['get', 'list', 'watch'] + (if deletePods then ['delete'] else [])),
        k.rbac.rule([''], ['pods/log'], ['get']),
      ]) + k.object.withLabels(labels(component)),
      k.rbac.roleBinding(name, e.namespace, name, name) + k.object.withLabels(labels(component)),
    ],

  // A ServiceAccount of this environment (with the workload identity annotations).
  serviceAccount(name, component, automountToken=false)::
    k.serviceAccount.new(name, e.namespace, automountToken)
    + k.serviceAccount.withLabels(labels(component))
    + k.serviceAccount.withAnnotations(p.security.service_account_annotations),

  // A PodDisruptionBudget, only where it can allow a disruption: with at least two replicas
  // (a minAvailable of 1 on a single replica would block every node drain), or a
  // maxUnavailable budget on a workload that may scale out.
  pdb(component, name, pdbParams, minReplicas, maxReplicas=minReplicas)::
    local maxUnavailable = std.get(pdbParams, 'max_unavailable', null);
    if !pdbParams.enabled || maxReplicas < 2 || (maxUnavailable == null && minReplicas < 2) then null
    else
      k.pdb.new(name, e.namespace, selectorLabels(component), std.get(pdbParams, 'min_available', 1), maxUnavailable)
      + k.pdb.withLabels(labels(component)),

  // A long-running Airflow component: Deployment (or StatefulSet), ServiceAccount and PDB.
  // `needsDags` adds the DAG volume (and the git-sync sidecar in git-sync mode), or in bundle
  // mode the bundle's connection (and SSH key and known_hosts mounts). `groomLogs` adds the log
  // groomer; `autoscaled` leaves replicas to an autoscaler (GitOps would otherwise reset them).
  // The component's extra_* parameters add environment, volumes and containers.
  // It waits for migrations when it uses the database; `extraSecrets` are secrets its extra
  // volumes hold (they roll the pod too); `extraAnnotations` are further checksums of its pods.
  component(component, name, params, mainContainer, needsDags=false, extraVolumes=[], extraInitContainers=[], apiAccess=false,
            kind='Deployment', groomLogs=false, terminationGracePeriod=60, minReplicas=params.replicas, maxReplicas=minReplicas, autoscaled=false,
            extraSecrets=[], extraAnnotations={})::
    local needs = mainContainer.secretNeeds;
    local usesDatabase = std.member(needs, 'database') || std.member(needs, 'result-backend');
    local volumeNeeds = needs + (if usesDatabase then ['database'] else []);
    local withGitSync = needsDags && p.dags.mode == 'git-sync';
    local main = mainContainer + k.container.withVolumeMounts(baseMounts + (if needsDags then dags.dagsMounts else []) + std.get(params, 'extra_volume_mounts', []))
                 + k.container.withEnv((if needsDags then dags.dagsEnv else []) + std.get(params, 'extra_env', []));
    local sidecars = (if withGitSync then [dags.gitSync('git-sync', false)] else [])
                     + (if groomLogs && p.logs.groomer.enabled then [logGroomer] else [])
                     + std.get(params, 'extra_containers', []);
    local pod =
      k.podSpec.new([main] + sidecars, name)
      + k.podSpec.withInitContainers((if usesDatabase then [waitForMigrations] else []) + (if withGitSync then [dags.gitSync('git-sync-init', true)] else []) + extraInitContainers
                                     + std.get(params, 'extra_init_containers', []))
      + k.podSpec.withVolumes(baseVolumes + (if volumeNeeds == [] then [] else [secrets.secretsVolume(volumeNeeds)]) + (if needsDags then dags.dagsVolumes else []) + extraVolumes + std.get(params, 'extra_volumes', []))
      + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
      + k.podSpec.withServiceAccountToken(apiAccess)
      + placement(params, selectorLabels(component))
      + k.podSpec.withImagePullSecrets(p.image.pull_secrets)
      + k.podSpec.withTerminationGracePeriod(terminationGracePeriod);
    local workload =
      (if kind == 'StatefulSet' then
         k.statefulSet.new(name, e.namespace, params.replicas, selectorLabels(component), pod)
         + k.statefulSet.withServiceName(name)
         + k.statefulSet.withParallelPodManagement()
       else
         k.deployment.new(name, e.namespace, params.replicas, selectorLabels(component), pod)
         + k.deployment.withRollingUpdate(0, 1))
      + k.deployment.withLabels(labels(component))
      + k.deployment.withPodLabels(labels(component))
      + k.deployment.withPodAnnotations(config.checksums + secrets.secretsChecksum(volumeNeeds + extraSecrets) + extraAnnotations)
      + (if autoscaled then k.deployment.withoutReplicas() else {});
    [
      workload,
      $.serviceAccount(name, component, apiAccess),
      $.pdb(component, name, params.pdb, minReplicas, maxReplicas),
    ],
}
