// compiled/<env>/README.md: what an environment runs, read on the Git host. Every line comes from
// the validated parameters and the names the manifests use (airflow-environment, secrets, auth);
// never a secret value: Secret names, ref paths and store keys only. No `?{` either: Kapitan
// would take it for a ref tag in this plain-text output.
// Strings are joined with `+`, never `%`: go-jsonnet runs std.format in Jsonnet, about 1 ms per
// call, which made this page cost more than all of an environment's manifests.
local e = import 'airflow-environment.libsonnet';
local auth = import 'auth.libsonnet';
local inv = import 'inventory.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';
local secrets = import 'secrets.libsonnet';

local p = e.params;
local n = e.names;
local env = e.env;
local ns = e.namespace;
local g = p.gitops;
local db = p.database;
local dags = p.dags;
local gs = dags.git_sync;
local celery = p.celery;
local scaling = celery.workers.autoscaling;
local eso = p.secrets.external_secrets;
local bundledDb = db.mode == 'bundled';
local pgbouncer = db.pgbouncer.enabled;
local redis = e.isCeleryExecutor && celery.broker.mode == 'bundled';
local flower = e.isCeleryExecutor && celery.flower.enabled;
local statsd = p.metrics.mode == 'statsd';
local fromStore = p.secrets.mode == 'external-secrets';
local argocd = g.engine == 'argocd';
local manifestsPath = 'compiled/' + env + '/manifests';
local appName = 'airflow-' + env;
// components/flux names its GitRepository airflow-<env> and one Kustomization per directory.
local fluxSteps = ['base', 'migrations', 'workloads'];
local fluxName(step) = appName + '-' + step;

// --- Markdown --------------------------------------------------------------------------------
local s = std.toString;
local code(x) = '`' + x + '`';
local cell(x) = std.strReplace(std.strReplace(s(x), '|', '\\|'), '\n', ' ');
local row(cells) = '| ' + std.join(' | ', [cell(c) for c in cells]) + ' |';
local table(header, rows) = std.join('\n', [row(header), row(['---' for _ in header])] + [row(r) for r in rows]);
local plural(count, one, many) = s(count) + ' ' + (if count == 1 then one else many);
local resources(r, which) =
  local x = std.get(r, which, {});
  if x == {} then '-' else std.join(', ', [s(x[key]) for key in ['cpu', 'memory'] if std.objectHas(x, key)]);
local range(from, to) = s(from) + '-' + s(to);

// --- What runs -------------------------------------------------------------------------------
// id: the diagram's node; replicas: the table's text; scale: the diagram's.
local apiHpa = p.api_server.autoscaling;
local component(id, name, object, resourcesOf, replicas, notes, scale=null) = {
  id: id, name: name, object: object, resources: resourcesOf, replicas: replicas, notes: notes,
  scale: if scale != null then scale else if replicas == '1' then '1 replica' else replicas + ' replicas',
};
local components =
  [
    if apiHpa.enabled then
      component('api', 'api-server', 'Deployment ' + n.apiServer, p.api_server.resources,
                range(apiHpa.min_replicas, apiHpa.max_replicas) + ' (HorizontalPodAutoscaler ' + n.apiServer + ', CPU ' + s(apiHpa.target_cpu_utilization) + '%)',
                'UI, REST API and Execution API on Service ' + n.apiServer + ':' + s(p.api_server.service.port) + ' (' + p.api_server.service.type + '), ' + plural(p.api_server.workers, 'worker process', 'worker processes'),
                range(apiHpa.min_replicas, apiHpa.max_replicas) + ' replicas (HPA)')
    else
      component('api', 'api-server', 'Deployment ' + n.apiServer, p.api_server.resources, s(p.api_server.replicas),
                'UI, REST API and Execution API on Service ' + n.apiServer + ':' + s(p.api_server.service.port) + ' (' + p.api_server.service.type + '), ' + plural(p.api_server.workers, 'worker process', 'worker processes')),
    component('scheduler', 'scheduler', 'Deployment ' + n.scheduler, p.scheduler.resources, s(p.scheduler.replicas),
              (if e.isLocalExecutor then 'schedules and runs the tasks (LocalExecutor, ' else 'schedules the tasks (')
              + 'parallelism ' + s(p.config.core.parallelism) + ')'),
    component('dagproc', 'dag-processor', 'Deployment ' + n.dagProcessor, p.dag_processor.resources, s(p.dag_processor.replicas), 'parses the DAG files'),
    component('triggerer', 'triggerer', 'Deployment ' + n.triggerer, p.triggerer.resources, s(p.triggerer.replicas), "runs deferred tasks' triggers"),
  ]
  + (if e.isKubernetesExecutor then [
       component('kworkers', 'worker pods', 'Pods from ConfigMap ' + n.podTemplate, p.workers.resources, 'one per task',
                 'KubernetesExecutor: the scheduler creates one per task', 'one per task'),
     ] else [])
  + (if e.isCeleryExecutor then [
       local notes = 'CeleryExecutor: queues ' + std.join(', ', celery.workers.queues) + ', concurrency ' + s(celery.workers.concurrency);
       local object = 'StatefulSet ' + n.celeryWorker;
       if scaling.mode == 'keda' then
         component('cworkers', 'Celery workers', object, celery.workers.resources,
                   range(scaling.min_replicas, scaling.max_replicas) + ' (KEDA ScaledObject ' + n.celeryWorker + ')', notes,
                   range(scaling.min_replicas, scaling.max_replicas) + ' replicas (KEDA)')
       else if scaling.mode == 'hpa' then
         component('cworkers', 'Celery workers', object, celery.workers.resources,
                   range(scaling.min_replicas, scaling.max_replicas) + ' (HorizontalPodAutoscaler ' + n.celeryWorker + ', CPU ' + s(scaling.hpa.target_cpu_utilization) + '%)', notes,
                   range(scaling.min_replicas, scaling.max_replicas) + ' replicas (HPA)')
       else component('cworkers', 'Celery workers', object, celery.workers.resources, s(celery.workers.replicas), notes),
     ] else [])
  + (if redis then [
       local r = celery.broker.bundled;
       component('redis', 'Redis (Celery broker)', 'StatefulSet ' + n.redis, r.resources, '1',
                 'image ' + r.image.repository + ':' + r.image.tag + ', ' + r.storage_size + ' volume'),
     ] else [])
  + (if flower then [
       component('flower', 'Flower', 'Deployment ' + n.flower, celery.flower.resources, '1', 'Celery monitoring behind basic auth, port ' + s(celery.flower.port)),
     ] else [])
  + (if bundledDb then [
       local b = db.bundled;
       component('db', 'PostgreSQL (bundled)', 'StatefulSet ' + n.postgres, b.resources, '1',
                 'image ' + b.image.repository + ':' + b.image.tag + ', ' + b.storage_size + ' volume, database ' + b.database),
     ] else [])
  + (if pgbouncer then [
       local b = db.pgbouncer;
       component('pgbouncer', 'PgBouncer', 'Deployment ' + n.pgbouncer, b.resources, s(b.replicas),
                 b.pool_mode + ' pooling, pool size ' + s(b.default_pool_size)),
     ] else [])
  + (if statsd then [
       component('statsd', 'statsd-exporter', 'Deployment ' + n.statsd, p.metrics.statsd.resources, '1', 'StatsD in, Prometheus metrics out on 9102'),
     ] else []);
local ids = [c.id for c in components];
local has(id) = std.member(ids, id);

local componentsTable = table(
  ['component', 'object', 'replicas', 'requests (cpu, memory)', 'limits (cpu, memory)', 'what it does'],
  [[c.name, c.object, c.replicas, resources(c.resources, 'requests'), resources(c.resources, 'limits'), c.notes] for c in components]
);

// --- Summary ---------------------------------------------------------------------------------
local executorText =
  std.join(' + ', e.executors) + (if std.length(e.executors) > 1 then ' (the first is the default)' else '')
  + (if e.isLocalExecutor then ": tasks run in the scheduler's pod"
     else if e.isCeleryExecutor then ': Celery workers, broker ' + (if redis then 'Redis ' + code(n.redis) else 'from Secret ' + code(celery.broker.external.secret_name))
                                     + (if e.isKubernetesExecutor then '; KubernetesExecutor tasks in their own pods' else '')
     else if e.isKubernetesExecutor then ': one pod per task'
     else '');

local credentials = if gs.auth == 'none' then '' else ' (' + gs.auth + ' credentials from Secret ' + code(gs.credentials_secret) + ')';
local gitSource = code(gs.repo) + ', ' + gs.ref_type + ' ' + code(gs.ref) + ', sub-path ' + code(gs.sub_path) + ', every ' + gs.period + credentials;
local dagText =
  if dags.mode == 'git-sync' then
    'git-sync from ' + gitSource + (if gs.promoted_from == '' then '' else '; promoted from ' + gs.promoted_from)
  else if dags.mode == 'bundle' then
    "Airflow's Git DAG bundle `dags` of " + gitSource
  else
    'PersistentVolumeClaim ' + code(dags.pvc.claim_name) + (if dags.pvc.sub_path == '' then '' else ', sub-path ' + code(dags.pvc.sub_path))
    + ' (' + (if dags.pvc.create then 'created here, ' + dags.pvc.size else 'created outside Git') + ', mounted read-only)';

local dbText =
  (if bundledDb then 'bundled PostgreSQL: StatefulSet ' + code(n.postgres) + ', ' + db.bundled.storage_size + ' volume, password in Secret ' + code(n.metadataDb)
   else 'external: SQLAlchemy URL from Secret ' + code(db.external.secret_name) + ' (key ' + code(db.external.secret_key) + ')'
        + (if db.external.host == '' then '' else ', host ' + db.external.host + ':' + s(db.external.port)))
  + (if pgbouncer then '; through PgBouncer ' + code(n.pgbouncer) + ' (' + plural(db.pgbouncer.replicas, 'replica', 'replicas') + ')' else '');

local secretsText =
  if fromStore then 'External Secrets: ' + eso.store_kind + ' ' + code(eso.store_name) + ', store keys under ' + code(eso.key_prefix + '/') + ', refreshed every ' + eso.refresh_interval
  else 'Kapitan refs under ' + code('kapitan/refs/targets/' + env + '/') + ', revealed at apply time' + (if argocd then " by Argo CD's kapitan-refs plugin" else '');

local fab = p.auth.fab;
local authText =
  if auth.isSimpleAuth then 'SimpleAuthManager: one `admin` with the generated password (development only)'
  else if auth.isFabAuth then
    'FAB auth manager, '
    + (if auth.authMethod == 'database' then 'users in the metadata database (admin ' + code(fab.admin.username) + ', ' + plural(std.length(fab.users), 'more user', 'more users') + ')'
       else if auth.authMethod == 'oauth' then 'OAuth/OpenID Connect: ' + std.join(', ', [o.name + ' (' + o.type + ')' for o in fab.oauth.providers])
       else if auth.authMethod == 'ldap' then 'LDAP ' + code(fab.ldap.url)
       else auth.authMethod)
    + (if fab.roles_mapping == {} then '' else ', ' + plural(std.length(fab.roles_mapping), 'group mapped to roles', 'groups mapped to roles'))
  else 'Keycloak auth manager: realm ' + code(p.auth.keycloak.realm) + ' of ' + p.auth.keycloak.server_url;

local logsText =
  (if p.logs.persistence == 'pvc' then 'PersistentVolumeClaim ' + code(n.logsPvc) + ' (' + p.logs.pvc.size + ', class ' + code(p.logs.pvc.storage_class) + ')' else 'emptyDir (gone with the pod)')
  + (if p.logs.remote.provider == 'none' then '' else '; remote: ' + p.logs.remote.provider)
  + (if p.logs.groomer.enabled then '; groomed after ' + s(p.logs.groomer.retention_days) + ' days' else '');

local metricsText =
  if statsd then 'StatsD to ' + code(n.statsd) + ', scraped by Prometheus' + (if p.metrics.service_monitor.enabled then ' (ServiceMonitor)' else '')
  else if p.metrics.mode == 'otel' then 'OpenTelemetry to ' + p.metrics.otel.host + ':' + s(p.metrics.otel.port)
  else 'none';

local gitopsText =
  if argocd then
    'Argo CD: Application ' + code(appName) + ' (namespace ' + code(g.argocd.namespace) + ', project ' + code(g.argocd.project) + ') syncs '
    + code(manifestsPath) + ' of ' + code(g.repo_url) + ' at ' + code(g.revision)
    + (if fromStore then ' as kustomize' else ' through the kapitan-refs plugin')
  else
    'Flux: GitRepository ' + code(appName) + ' (' + code(g.repo_url) + ' at ' + code(g.revision) + ') and Kustomizations '
    + std.join(' -> ', [code(fluxName(step)) for step in fluxSteps]) + ' in ' + code(g.flux.namespace);

local exposure =
  (if p.api_server.base_url == '' then [] else ['base URL ' + p.api_server.base_url])
  + (if p.api_server.ingress.enabled then ['Ingress ' + code(n.apiServer) + ' (' + p.api_server.ingress.host + ')'] else [])
  + (if p.api_server.http_route.enabled then ['HTTPRoute ' + code(n.apiServer) + ' (' + std.join(', ', p.api_server.http_route.hostnames) + ')'] else []);

local summary = table(['', env], [
  ['Namespace', code(ns) + ', profile ' + p.profile],
  ['Airflow', p.version + ', image ' + code(e.image) + ' (pull policy ' + p.image.pull_policy + ')'
             + (if p.promotion.from == '' then '' else '; release promoted from ' + p.promotion.from
                + ' (`airflow-gitops promote --from ' + p.promotion.from + ' --to ' + e.env + '`)')],
  ['Executor', executorText],
  ['DAGs', dagText],
  ['Database', dbText],
  ['Secrets', secretsText],
  ['Sign-in', authText],
  ['UI', if exposure == [] then 'Service ' + code(n.apiServer) + ' only (port-forward)' else std.join('; ', exposure)],
  ['Logs', logsText],
  ['Metrics', metricsText],
  ['Network policies', if p.network_policies.enabled then 'deny by default, task egress ' + p.network_policies.worker_egress else 'off'],
  ['GitOps', gitopsText],
]);

// --- Diagram (Mermaid) -----------------------------------------------------------------------
local label(lines) = '"' + std.join('<br/>', [std.strReplace(l, '"', '#quot;') for l in lines]) + '"';
local dbTarget = if pgbouncer then 'pgbouncer' else 'db';
// Who reads the DAG files: the dag-processor; the triggerer, except with the Git DAG bundle
// (Airflow 3.3 opens no bundle there); the scheduler with the LocalExecutor; the workers.
local dagReaders =
  ['dagproc']
  + (if dags.mode != 'bundle' then ['triggerer'] else [])
  + (if e.isLocalExecutor then ['scheduler'] else [])
  + [id for id in ['kworkers', 'cworkers'] if has(id)];
local dagEdge = { 'git-sync': 'git-sync', bundle: 'Git DAG bundle', pvc: 'read-only mount' }[dags.mode];
local signIn =
  if auth.isSimpleAuth then 'UI, API: simple auth'
  else if auth.isFabAuth then 'UI, API: FAB ' + auth.authMethod
  else 'UI, API: Keycloak';
local dbNode(indent) =
  if bundledDb then indent + 'db[(' + label(['PostgreSQL (bundled)', 'StatefulSet ' + n.postgres, db.bundled.storage_size]) + ')]'
  else indent + 'db[(' + label(['external PostgreSQL', 'URL from Secret ' + db.external.secret_name]) + ')]';
local edge(from, text, to) = '  ' + from + ' -->|' + text + '| ' + to;

local diagram = std.join('\n', [
  '```mermaid',
  'flowchart LR',
  edge('people([people])', signIn, 'api'),
  if argocd then '  gitops[' + label(['Argo CD', 'Application ' + appName]) + ']'
  else '  gitops[' + label(['Flux', 'Kustomizations ' + std.join(', ', [fluxName(step) for step in fluxSteps])]) + ']',
  edge('repo[(' + label(['this repository', g.revision + ': ' + manifestsPath]) + ')]', if argocd then 'reads' else 'GitRepository ' + appName, 'gitops'),
  if dags.mode == 'pvc' then '  dags[(' + label(['DAG volume', 'PVC ' + dags.pvc.claim_name]) + ')]'
  else '  dags[(' + label(['DAG repository', gs.repo, gs.ref + ':' + gs.sub_path]) + ')]',
]
+ (if bundledDb then [] else [dbNode('  ')])
+ (if fromStore then [edge('store[(' + label([eso.store_kind + ' ' + eso.store_name, eso.key_prefix + '/...']) + ')]', 'ExternalSecrets', 'ns')] else [])
+ ['  subgraph ns[' + label(['namespace ' + ns]) + ']']
+ ['    ' + c.id + '[' + label([c.name, c.object, c.scale]) + ']' for c in components if c.id != 'db']
+ (if bundledDb then [dbNode('    ')] else [])
+ ['  end']
+ [edge('gitops', if argocd then 'applies in sync waves' else 'applies base, migrations, workloads', 'ns')]
+ [edge(id, 'metadata', dbTarget) for id in ['api', 'scheduler', 'dagproc', 'triggerer']]
+ (if pgbouncer then [edge('pgbouncer', 'pools', 'db')] else [])
+ [edge('dags', dagEdge, id) for id in dagReaders]
+ (if has('kworkers') then [edge('scheduler', 'creates pods', 'kworkers'), edge('kworkers', 'Execution API', 'api')] else [])
+ (if e.isLocalExecutor then [edge('scheduler', 'tasks: Execution API', 'api')] else [])
+ (if has('cworkers') then
     (if redis then [edge('scheduler', 'queues tasks', 'redis'), edge('redis', 'tasks', 'cworkers')]
      else [edge('scheduler', 'queues tasks', 'cworkers')])
     + [edge('cworkers', 'Execution API', 'api'), edge('cworkers', 'result backend', dbTarget)]
   else [])
+ (if flower then [edge('flower', 'monitors', if redis then 'redis' else 'cworkers')] else [])
+ (if statsd then ['  ' + id + ' -.->|StatsD| statsd' for id in ['scheduler', 'dagproc', 'triggerer']] else [])
+ ['```']);

// --- Delivery --------------------------------------------------------------------------------
local dependencies = [code(std.split(c.object, ' ')[1]) for c in components if std.member(['db', 'pgbouncer', 'redis', 'statsd'], c.id)];
// The Jobs of Argo CD's wave 1 (their names end in a hash of what they apply).
local laterJobs =
  (if auth.authMethod == 'database' then [code(auth.authNames.users + '-<hash>') + ' (users)'] else [])
  + (if auth.isKeycloakAuth && p.auth.keycloak.setup_job.enabled then [code(auth.authNames.keycloakSetup + '-<hash>') + ' (Keycloak permissions)'] else [])
  + (if p.connections != {} || p.variables != {} || p.pools != {} then [code('airflow-objects-<hash>') + ' (connections, variables, pools)'] else []);
local delivery =
  if argocd then
    std.join('\n', [
      'Argo CD Application ' + code(appName) + ' (in `compiled/' + env + '/argocd/`) applies ' + code(manifestsPath) + ' in sync waves, each waited for:',
      '',
      table(['wave', 'what'], [
        ['-3', 'the Namespace'],
        ['-2', '`manifests/base`: config, secrets, accounts, RBAC, NetworkPolicies' + (if dependencies == [] then '' else ', and what Airflow depends on: ' + std.join(', ', dependencies))],
        ['-1', '`manifests/migrations`: the `airflow-db-migrate-<hash>` Job (runs once per image)'],
        ['0', '`manifests/workloads`: the Airflow components, their Services, budgets and autoscalers, and the claims they mount'],
      ] + (if laterJobs == [] then [] else [['1', 'Jobs that need the migrated database: ' + std.join(', ', laterJobs)]])),
    ])
  else
    std.join('\n', [
      'Flux applies ' + code(manifestsPath) + ' (its objects in `compiled/' + env + '/flux/`, interval ' + g.flux.interval + ', timeout ' + g.flux.timeout + '), one directory after the other:',
      '',
      table(['Kustomization', 'path', 'dependsOn'], [
        [code(fluxName(fluxSteps[i])), code('./' + manifestsPath + '/' + fluxSteps[i]), if i == 0 then '-' else code(fluxName(fluxSteps[i - 1]))]
        for i in std.range(0, std.length(fluxSteps) - 1)
      ]),
    ]);

// --- Secrets (names and paths only) ----------------------------------------------------------
// A ref tag is `?{base64:targets/<env>/<name>||generator}`: its path, never the tag.
local refPath(tag) = 'kapitan/refs/' + std.split(std.split(tag, '||')[0], ':')[1];
local generatedRows = [
  local data = if fromStore then secrets.storeKeys(secret.files) else secrets.refData(secret.files);
  [code(secret.name), std.join(', ', [code(key) for key in std.objectFields(data)]),
   std.join(', ', [code(if fromStore then eso.key_prefix + '/' + data[key] else refPath(data[key])) for key in std.objectFields(data)])]
  for secret in secrets.generatedSecrets
];
local authRefs = auth.authRefs;
local authRows =
  if authRefs == {} then []
  else [[code(auth.authNames.secret), std.join(', ', [code(f) for f in std.objectFields(authRefs)]),
         std.join(', ', [code(if fromStore then eso.key_prefix + '/' + authRefs[f] else 'kapitan/refs/targets/' + env + '/' + authRefs[f]) for f in std.objectFields(authRefs)])]];
// Connections' passwords and secret variables (components/airflow-objects): `{ref: PATH}` in the
// Secret airflow-objects, or `{secret_name, secret_key}` created outside Git.
local objectValues =
  [c.password for c in std.objectValues(p.connections) if std.objectHas(c, 'password')]
  + [v.secret for v in std.objectValues(p.variables) if std.objectHas(v, 'secret')];
local objectRefs = std.uniq(std.sort([v.ref for v in objectValues if std.objectHas(v, 'ref')]));
local objectRows =
  if objectRefs == [] then []
  else [[code('airflow-objects'), 'connections and variables',
         std.join(', ', [code(if fromStore then eso.key_prefix + '/' + r else 'kapitan/refs/targets/' + env + '/' + r) for r in objectRefs])]];
local objectSecrets = std.uniq(std.sort([v.secret_name + ' ' + v.secret_key for v in objectValues if !std.objectHas(v, 'ref')]));
local outside =
  [[code(std.split(x, ' ')[0]), 'a connection password or variable (key ' + code(std.split(x, ' ')[1]) + ')'] for x in objectSecrets]
  + (if bundledDb then [] else [[code(db.external.secret_name), 'the metadata database URL (key ' + code(db.external.secret_key) + ')']])
  + (if dags.mode != 'pvc' && gs.auth != 'none' then [[code(gs.credentials_secret), "the DAG repository's " + gs.auth + ' credentials']] else [])
  + (if e.isCeleryExecutor && celery.broker.mode == 'external' then [[code(celery.broker.external.secret_name), 'the Celery broker URL (key ' + code(celery.broker.external.secret_key) + ')']] else []);
local secretsSection = std.join('\n', [
  'No value appears here, nor anywhere in `compiled/`: only where each comes from.',
  '',
  table(['Secret', 'keys', if fromStore then 'store keys' else 'Kapitan ref files'], generatedRows + authRows + objectRows),
] + (if outside == [] then [] else ['', 'Created outside Git, before the first sync:', '', table(['Secret', 'holds'], outside)]));

// --- Sources ---------------------------------------------------------------------------------
// The classes as the inventory lists them for this target, each with its file (a class `a.b` is
// inventory/classes/a/b.yml, or a/b/init.yml); the ones the target does not name come from
// another class.
local classes = kap.inventory().classes;
// inventory.libsonnet names the target file inventory/targets/<target>.yml; a target kept in a
// sub-folder is named without a link rather than with a broken one.
local targetExists = kap.file_exists(inv.targetFile).exists;
local named = if targetExists then std.get(std.parseYaml(kap.file_read(inv.targetFile)), 'classes', []) else [];
local classFile(c) =
  local base = 'inventory/classes/' + std.strReplace(c, '.', '/');
  if kap.file_exists(base + '.yml').exists then base + '.yml'
  else if kap.file_exists(base + '.yaml').exists then base + '.yaml'
  else base + '/init.yml';
local link(path) = '[' + path + '](../../' + path + ')';
local targetLink = if targetExists then link(inv.targetFile) else code(inv.targetFile);
local sources = std.join('\n', [
  'Target: ' + targetLink,
  '',
  'Classes, as the inventory lists them for this target:',
  '',
] + [
  s(i + 1) + '. ' + code(classes[i]) + ' ' + link(classFile(classes[i])) + (if !targetExists || std.member(named, classes[i]) then '' else ' (included by another class)')
  for i in std.range(0, std.length(classes) - 1)
]);

{
  readme: std.join('\n', [
    '# Airflow environment `' + env + '`',
    '',
    '<!-- Generated by kapitan compile (components/overview, kapitan/lib/overview.libsonnet) from the files listed at the end. Do not edit: change the inventory and compile. -->',
    '',
    'What `kapitan compile` made of ' + targetLink + ': Airflow ' + p.version + ' with the ' + std.join(' and ', e.executors) + ', applied by ' + (if argocd then 'Argo CD' else 'Flux') + '.',
    '',
    summary,
    '',
    '## Components',
    '',
    componentsTable,
    '',
    diagram,
    '',
    '## Delivery',
    '',
    delivery,
    '',
    '## Secrets',
    '',
    secretsSection,
    '',
    '## Where it comes from',
    '',
    sources,
  ]) + '\n',
}
