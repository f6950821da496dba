// The one way components read the inventory, and its checks: parameters.airflow against
// kapitan/schemas/airflow.schema.json and the rules below, so that a plain `kapitan compile`
// refuses a bad inventory with a message naming the target file, the key and what is allowed.
// components/environment.jsonnet, an environment's first input, wraps its output in whenValid;
// components/overview (its README.md) comes after it in the same target, so it reads the
// parameters without checking them again (Kapitan stops a target at its first failing input).
local kap = import 'lib/kapitan.libjsonnet';
local text = import 'text.libsonnet';
// The schema goes to the validator as text (no re-serialisation on every compile); it is
// parsed only to explain an error.
local schemaText = importstr 'kapitan/schemas/airflow.schema.json';
local schema = std.parseJson(schemaText);

local inventory = kap.inventory();
local parameters = inventory.parameters;
local target = parameters.kapitan.vars.target;
local targetFile = 'inventory/targets/%s.yml' % target;

// Top-level parameter keys a target may carry; anything else is a typo (`airflw:`).
local knownTopLevel = ['airflow', 'kapitan', 'target_name'];

// Keys of airflow.cfg that are derived from first-class parameters or hold secrets.
local reservedConfig = {
  core: {
    executor: 'set parameters.airflow.executor instead',
    dags_folder: 'it follows parameters.airflow.dags.mode',
    execution_api_server_url: 'it points at this environment\'s api-server Service',
    fernet_key: 'secrets are generated as Kapitan refs, never written in the inventory',
    auth_manager: 'set parameters.airflow.auth.manager with a class airflow.auth.* (simple, fab-database, fab-oauth, fab-ldap, keycloak)',
    simple_auth_manager_users: 'the simple auth manager has one admin (parameters.airflow.auth.manager: simple); use a class airflow.auth.fab-* for more users and roles',
    simple_auth_manager_passwords_file: 'the simple auth manager\'s password file is written by the api-server\'s init container',
  },
  fab: { config_file: 'webserver_config.py is generated from parameters.airflow.auth.fab' },
  keycloak_auth_manager: {
    server_url: 'set parameters.airflow.auth.keycloak.server_url',
    realm: 'set parameters.airflow.auth.keycloak.realm',
    client_id: 'set parameters.airflow.auth.keycloak.client_id',
    client_secret: 'set parameters.airflow.auth.keycloak.client_secret to {ref: ...} or {secret_name, secret_key}; secrets never go in the inventory',
  },
  database: { sql_alchemy_conn: 'set parameters.airflow.database instead; secrets never go in the inventory' },
  api: { secret_key: 'secrets are generated as Kapitan refs, never written in the inventory' },
  api_auth: { jwt_secret: 'secrets are generated as Kapitan refs, never written in the inventory' },
  kubernetes_executor: {
    namespace: 'it is parameters.airflow.namespace',
    pod_template_file: 'the pod template is generated from parameters.airflow.workers',
  },
  logging: { base_log_folder: 'logs are mounted at /opt/airflow/logs' },
  dag_processor: {
    dag_bundle_config_list: 'it follows parameters.airflow.dags.mode (bundle: the Git DAG bundle of dags.git_sync.repo, ref and sub_path)',
    dag_bundle_storage_path: 'DAG bundles are cloned into each pod\'s /tmp emptyDir (the root filesystem is read-only)',
  },
};

local unknownTopLevel = [k for k in std.objectFields(parameters) if !std.startsWith(k, '_') && !std.member(knownTopLevel, k)];

local reservedErrors = [
  '%s: parameters.airflow.config.%s.%s: cannot be set here: %s' % [targetFile, section, key, reservedConfig[section][key]]
  for section in std.objectFields(reservedConfig)
  if std.objectHas(parameters, 'airflow') && std.isObject(parameters.airflow) && std.objectHas(parameters.airflow, 'config')
     && std.isObject(parameters.airflow.config) && std.objectHas(parameters.airflow.config, section)
     && std.isObject(parameters.airflow.config[section])
  for key in std.objectFields(reservedConfig[section])
  if std.objectHas(parameters.airflow.config[section], key)
];

// airflow.cfg keys Airflow does not know are typos (Airflow itself would ignore them silently).
local optionsFile = 'kapitan/schemas/airflow-config-options/%s.json';
local unknownConfigErrors(airflow) =
  local file = optionsFile % airflow.version;
  if !kap.file_exists(file).exists then
    ['%s: parameters.airflow.version: no option list for Airflow %s in %s: run `airflow-gitops config-options --version %s` and commit the file'
     % [targetFile, airflow.version, file, airflow.version]]
  else
    local known = std.parseJson(kap.file_read(file)).sections;
    local unchecked = std.get(airflow, 'provider_config_sections', []);
    // An option Airflow renamed or removed: say what replaced it rather than guess at typos. Read
    // only to explain an unknown option (Jsonnet is lazy): a valid inventory never parses it.
    local retiredFile = std.strReplace(file, '.json', '.retired.json');
    local retired = if kap.file_exists(retiredFile).exists then std.parseJson(kap.file_read(retiredFile)) else {};
    local renamed(section, key) = std.get(std.get(std.get(retired, 'renamed', {}), section, {}), key, null);
    local removed(section, key) = std.get(std.get(std.get(retired, 'removed', {}), section, {}), key, null);
    local suggest(section, key) =
      local close = [o for o in std.objectFields(std.get(known, section, {}))
                     if std.length(o) >= 3 && std.length(key) >= 3 && std.substr(o, 0, 3) == std.substr(key, 0, 3)];
      local to = renamed(section, key);
      local why = removed(section, key);
      if to != null then
        local parts = std.splitLimit(to.to, '.', 1);
        ' (renamed to [%s] %s in Airflow %s: set parameters.airflow.config.%s.%s instead)' % [parts[0], parts[1], to.since, parts[0], parts[1]]
      else if why != null then ' (removed from Airflow%s)' % (if why == '' then '' else ': ' + why)
      else if close == [] then '' else ' (did you mean %s?)' % std.join(', ', close[:3]);
    [
      if std.objectHas(known, section) || renamed(section, key) != null || removed(section, key) != null then
        '%s: parameters.airflow.config.%s.%s: Airflow %s has no option [%s] %s%s'
        % [targetFile, section, key, airflow.version, section, key, suggest(section, key)]
      else
        '%s: parameters.airflow.config.%s: Airflow %s has no section [%s]; if a provider in your image adds it, list it in parameters.airflow.provider_config_sections'
        % [targetFile, section, airflow.version, section]
      for section in std.objectFields(airflow.config)
      if !std.member(unchecked, section)
      for key in (if std.objectHas(known, section) then std.objectFields(airflow.config[section]) else [''])
      if !std.objectHas(known, section) || !std.objectHas(known[section], key)
    ]
    // Values of the wrong type for the options it knows (Airflow would stop on them).
    + (import 'config-types.libsonnet')(airflow, known, targetFile);

// `executor` names one executor or two, separated by a comma.
local usesExecutor(airflow, name) = std.member(std.split(airflow.executor, ','), name);

// PgBouncer and KEDA reach an external database with its parts, not the URL in the Secret.
local externalDatabaseParts(airflow) =
  local db = airflow.database;
  local celery = usesExecutor(airflow, 'CeleryExecutor');
  local users = [u for u in [
    if db.pgbouncer.enabled then 'parameters.airflow.database.pgbouncer.enabled',
    if celery && airflow.celery.workers.autoscaling.mode == 'keda' then 'parameters.airflow.celery.workers.autoscaling.mode: keda',
  ] if u != null];
  [
    '%s: parameters.airflow.database.external.%s: is empty: %s connects to the external database with it (set host, port, database, user, sslmode and password_key, the key of %s holding the password alone)'
    % [targetFile, key, users[0], db.external.secret_name]
    for key in ['host', 'password_key']
    if db.mode == 'external' && users != [] && std.get(db.external, key, '') == ''
  ];

local remoteLoggingProblems(remote) =
  local provider = remote.provider;
  local folder = std.get(remote, 'base_folder', '');
  local scheme = { s3: 's3://', gcs: 'gs://' };
  (if std.objectHas(scheme, provider) && !std.startsWith(folder, scheme[provider]) then
     [{ key: 'base_folder', message: '%s is not a %s location: set it to %sBUCKET/PATH' % [std.manifestJson(folder), provider, scheme[provider]] }]
   else [])
  + (if std.member(['elasticsearch', 'opensearch'], provider) && std.get(remote, 'host', '') == '' then
       [{ key: 'host', message: 'is empty: set it to the %s URL, such as https://logs.example.com:9200' % provider }]
     else []);

// The value at a dotted key of parameters.airflow (`dags.mode`), null where there is none.
local valueAt(airflow, key) = std.foldl(function(node, k) if std.isObject(node) then std.get(node, k, null) else null, std.split(key, '.'), airflow);

// Environment variables that would override what the compile derives or keeps secret.
local reservedEnvErrors(airflow) =
  local reservedNames = {
    ['AIRFLOW__%s__%s%s' % [std.asciiUpper(section), std.asciiUpper(key), suffix]]: [section, key]
    for section in std.objectFields(reservedConfig)
    for key in std.objectFields(reservedConfig[section])
    for suffix in ['', '_CMD', '_SECRET']
  };
  local blocks = [
    { path: path, block: valueAt(airflow, path) }
    for path in ['api_server', 'scheduler', 'dag_processor', 'triggerer', 'workers', 'celery.workers']
  ];
  [
    '%s: parameters.airflow.%s.extra_env: %s cannot be set here: it is [%s] %s, and %s'
    % [targetFile, b.path, e.name, reservedNames[e.name][0], reservedNames[e.name][1], reservedConfig[reservedNames[e.name][0]][reservedNames[e.name][1]]]
    for b in blocks
    for e in std.get(b.block, 'extra_env', [])
    if std.objectHas(reservedNames, e.name)
  ];

// Declared connections and variables whose {ref: PATH} was never written (Kapitan refs mode):
// Kapitan's own error would only say it found no backend for the tag.
// A secret_value `{ref: PATH}` whose Kapitan ref was never written (kapitan-refs), at
// parameters.airflow.<key>: Kapitan's own error would only say it found no backend for the tag.
local missingRefErrors(airflow, key, value) =
  if value == null || !std.objectHas(value, 'ref') || airflow.secrets.mode != 'kapitan-refs' then []
  else
    local path = 'targets/%s/%s' % [target, value.ref];
    if kap.file_exists('kapitan/refs/' + path).exists then []
    else ['%s: parameters.airflow.%s: the Kapitan ref %s does not exist yet: write it once with `kapitan refs --write base64:%s -f FILE` and commit kapitan/refs/%s'
          % [targetFile, key, path, path, path]];

local missingRefs(airflow) =
  local values = [
    { key: 'connections.%s.password' % id, value: airflow.connections[id].password }
    for id in std.objectFields(airflow.connections) if std.objectHas(airflow.connections[id], 'password')
  ] + [
    { key: 'variables.%s.secret' % name, value: airflow.variables[name].secret }
    for name in std.objectFields(airflow.variables) if std.objectHas(airflow.variables[name], 'secret')
  ];
  std.flattenArrays([missingRefErrors(airflow, v.key, v.value) for v in values]);

// Combinations the schema cannot express.
local isTrue(v) = std.asciiLower(std.toString(v)) == 'true';
local combinationErrors(airflow) = [
  '%s: parameters.airflow.gitops.engine: flux cannot reveal Kapitan refs, so its Secrets would hold tags instead of values: set parameters.airflow.secrets.mode: external-secrets (class secrets.external-secrets), or use gitops.engine: argocd' % targetFile
  for _ in [null]
  if airflow.gitops.engine == 'flux' && airflow.secrets.mode == 'kapitan-refs'
] + [
  '%s: parameters.airflow.logs.persistence: emptyDir loses task logs when %s: set it to pvc (class airflow.logs.pvc), use remote logging (classes airflow.logs.remote-*), or set parameters.airflow.config.logging.remote_logging: "True"'
  % [targetFile, if usesExecutor(airflow, 'KubernetesExecutor') then 'KubernetesExecutor worker pods are deleted' else 'a Celery worker restarts or is scaled in']
  for _ in [null]
  if (usesExecutor(airflow, 'KubernetesExecutor') || usesExecutor(airflow, 'CeleryExecutor'))
     && airflow.logs.persistence == 'emptyDir'
     && airflow.logs.remote.provider == 'none'
     && !isTrue(std.get(std.get(airflow.config, 'logging', {}), 'remote_logging', false))
] + externalDatabaseParts(airflow) + [
  '%s: parameters.airflow.metrics.service_monitor.enabled: a ServiceMonitor scrapes the bundled statsd-exporter: set parameters.airflow.metrics.mode: statsd (class airflow.metrics.statsd), or turn the ServiceMonitor off' % targetFile
  for _ in [null]
  if airflow.metrics.service_monitor.enabled && airflow.metrics.mode != 'statsd'
] + [
  '%s: parameters.airflow.logs.remote.%s: %s' % [targetFile, problem.key, problem.message]
  for problem in remoteLoggingProblems(airflow.logs.remote)
] + [
  '%s: parameters.airflow.%s.min_replicas: %d is more than max_replicas (%d)' % [targetFile, scaler.path, scaler.min, scaler.max]
  for scaler in [
    { path: 'api_server.autoscaling', min: airflow.api_server.autoscaling.min_replicas, max: airflow.api_server.autoscaling.max_replicas },
    { path: 'celery.workers.autoscaling', min: airflow.celery.workers.autoscaling.min_replicas, max: airflow.celery.workers.autoscaling.max_replicas },
  ]
  if scaler.min > scaler.max
] + [
  '%s: parameters.airflow.celery.workers.autoscaling.min_replicas: 0 needs mode keda (a HorizontalPodAutoscaler cannot scale to zero): set it to 1 or more, or use mode: keda' % targetFile
  for _ in [null]
  if airflow.celery.workers.autoscaling.mode == 'hpa' && airflow.celery.workers.autoscaling.min_replicas == 0
] + reservedEnvErrors(airflow) + missingRefs(airflow);

// What a first install or a production environment would otherwise get wrong silently.
local placeholderHosts = ['example.com', 'example.org', 'example.net', '/example/', ':example/'];
local productionErrors(airflow) =
  local repoUrl = airflow.gitops.repo_url;
  local lowerUrl = std.asciiLower(repoUrl);
  local placeholder = [h for h in placeholderHosts if text.contains(lowerUrl, h)];
  local rwxClaims = [
    c for c in [
      if airflow.logs.persistence == 'pvc' then { key: 'logs.pvc', what: 'the task logs claim' },
      if airflow.dags.mode == 'pvc' && airflow.dags.pvc.create then { key: 'dags.pvc', what: 'the DAG claim' },
    ] if c != null
  ];
  local tag = airflow.image.tag;
  local bareTag = if std.startsWith(tag, 'slim-') then std.substr(tag, 5, std.length(tag) - 5) else tag;
  [
    '%s: parameters.airflow.gitops.repo_url: %s: Argo CD or Flux would deploy this environment from a repository that is not yours; set it to the Git URL of your fork of this repository (once for every environment, in inventory/classes/gitops-repository.yml)'
    % [targetFile, if repoUrl == '' then 'is empty' else '%s is an example URL' % std.manifestJson(repoUrl)]
    for _ in [null]
    if repoUrl == '' || placeholder != []
  ] + [
    '%s: parameters.airflow.api_server.base_url: is empty in a %s environment: Airflow writes it into task log links, e-mails and callbacks (they would point at localhost); set it to the URL people open the UI at, such as https://airflow.example.com (only profiles.dev may leave it empty)'
    % [targetFile, airflow.profile]
    for _ in [null]
    if airflow.profile != 'dev' && airflow.api_server.base_url == ''
  ] + [
    '%s: parameters.airflow.%s.storage_class: is empty: %s is ReadWriteMany, which the default storage class of most clusters (EKS, GKE, AKS) cannot provide, so it would stay Pending and the first sync would never finish; set it to your cluster\'s ReadWriteMany class (EFS: efs-sc, GKE Filestore: standard-rwx, AKS: azurefile-csi, an NFS provisioner\'s class)'
    % [targetFile, c.key, c.what]
    for c in rwxClaims
    if std.get(std.get(airflow, std.split(c.key, '.')[0], {}), 'pvc', {}).storage_class == ''
  ] + [
    // Other unknown names are refused by validate, sync-dags and promote-dags, which list every target.
    '%s: parameters.airflow.dags.git_sync.promoted_from: %s is this environment itself: name the environment its DAGs are promoted from, or "" when they are synced directly'
    % [targetFile, std.manifestJson(from)]
    for from in [std.get(airflow.dags.git_sync, 'promoted_from', '')]
    if from == target
  ] + [
    '%s: parameters.airflow.image.tag: %s does not name Airflow %s (parameters.airflow.version), and every check (DAGs, airflow.cfg options) uses that version: set version to the image\'s Airflow version, or, for a custom image built on Airflow %s, set parameters.airflow.image.carries_version: true'
    % [targetFile, std.manifestJson(tag), airflow.version, airflow.version]
    for _ in [null]
    if !std.get(airflow.image, 'carries_version', false) && bareTag != airflow.version && !std.startsWith(bareTag, airflow.version + '-')
  ];

// A choice (executor, DAG mode, database mode...) made by two classes: the later one would win
// silently while the earlier one's other settings stay (classes record their choices in
// parameters.airflow.chosen_by; reclass appends the lists).
local choiceErrors(airflow) =
  local chosen = std.get(airflow, 'chosen_by', {});
  [
    '%s: parameters.airflow.%s: chosen by two classes, %s (%s) and %s (%s): the later class wins silently while the earlier one\'s other settings stay; keep one of them in the target\'s classes (or in the classes they include)'
    % [targetFile, key, classes[0].class, std.manifestJson(classes[0].value), classes[1].class, std.manifestJson(classes[1].value)]
    for key in std.objectFields(chosen)
    for classes in [std.uniq(std.sort(chosen[key], function(c) c.class), function(c) c.class)]
    if std.length(classes) > 1
  ];

// A class's choice overridden afterwards (a class that records nothing, airflow.defaults listed
// after the feature class, or the target's own value): the value in effect is not the one the
// class chose, while the class's other settings stay.
local overriddenChoiceErrors(airflow) =
  local chosen = std.get(airflow, 'chosen_by', {});
  [
    '%s: parameters.airflow.%s: is %s, but the class %s chose %s: something after it set the value again (airflow.defaults listed after it, another class, or the target itself) while the class\'s other settings stay; list common and airflow.defaults first, and make the choice with one class only (the class for %s, if there is one)'
    % [targetFile, key, std.manifestJson(valueAt(airflow, key)), chosen[key][0].class, std.manifestJson(chosen[key][0].value), std.manifestJson(valueAt(airflow, key))]
    for key in std.objectFields(chosen)
    if std.length(std.uniq(std.sort([c.class for c in chosen[key]]))) == 1 && valueAt(airflow, key) != chosen[key][0].value
  ];

// Outside dev, the choices that decide where data and secrets live are made explicitly by a class
// (profiles no longer make them: an older target relying on its profile would otherwise switch
// to a bundled database and Kapitan refs without a word).
local explicitChoices = {
  executor: 'airflow.executor.kubernetes, airflow.executor.celery, airflow.executor.local or airflow.executor.celery-kubernetes',
  'database.mode': 'airflow.database.external or airflow.database.bundled',
  'secrets.mode': 'secrets.external-secrets or secrets.kapitan-refs',
};
local missingChoiceErrors(airflow) = [
  '%s: parameters.airflow.%s: no class chose it in this %s environment, so it is the default %s: list the class you mean among the target\'s classes (%s); profiles choose no feature'
  % [targetFile, key, airflow.profile, std.manifestJson(valueAt(airflow, key)), explicitChoices[key]]
  for key in std.objectFields(explicitChoices)
  if airflow.profile != 'dev' && !std.objectHas(std.get(airflow, 'chosen_by', {}), key)
];

local checked =
  if unknownTopLevel != [] then
    error '%s: parameters.%s: unknown key (allowed keys: %s)' % [targetFile, unknownTopLevel[0], std.join(', ', knownTopLevel)]
  else if !std.objectHas(parameters, 'airflow') then
    error '%s: parameters.airflow is missing: include the class airflow.defaults' % targetFile
  else
    local result = kap.jsonschema(parameters.airflow, schemaText);
    if !result.valid then error 'invalid inventory: ' + (import 'inventory-errors.libsonnet')(schema, parameters.airflow, targetFile, result.reason)
    else if reservedErrors != [] then error 'invalid inventory: ' + reservedErrors[0]
    else
      // A clash of classes first: it explains the other problems it causes.
      local problems = choiceErrors(parameters.airflow) + unknownConfigErrors(parameters.airflow)
                       + combinationErrors(parameters.airflow) + productionErrors(parameters.airflow)
                       + overriddenChoiceErrors(parameters.airflow) + missingChoiceErrors(parameters.airflow)
                       + (import 'inventory-auth.libsonnet')(parameters.airflow, targetFile, function(key, value) missingRefErrors(parameters.airflow, key, value))
                       + (import 'inventory-sizing.libsonnet')(parameters.airflow, targetFile);
      if problems != [] then error 'invalid inventory: ' + problems[0]
      else parameters.airflow;

{
  target: target,
  targetFile: targetFile,
  // parameters.airflow, as the inventory merges it.
  airflow: parameters.airflow,
  // `output`, once parameters.airflow passed every check; else the compile fails with the first
  // problem. The checks cost ~15 ms per evaluation: the README's does not repeat them.
  whenValid(output):: assert std.isObject(checked); output,
}
