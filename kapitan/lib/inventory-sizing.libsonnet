// Pods whose memory cannot hold the configured concurrency (README: Resources that fit the
// concurrency). Every running task is a process in the pod that runs it: the scheduler's with the
// LocalExecutor (up to [core] parallelism of them), a Celery worker's (up to its concurrency); a
// KubernetesExecutor task has a pod of its own. Such a pod is OOM-killed by a full fan-out (a
// 16-way mapped task killed a 1Gi LocalExecutor scheduler within seconds, tasks and all), so the
// compile refuses a limit below the pod's own memory + slots x task_memory (parameters.airflow.sizing,
// figures measured with `airflow-gitops up`). Called by inventory.libsonnet; each error names the
// target file, the key and both ways out.
function(airflow, targetFile)
local sizing = airflow.sizing;
local executors = std.split(airflow.executor, ',');
local err(key, message) = '%s: parameters.airflow.%s: %s' % [targetFile, key, message];

// Kubernetes memory quantities in MiB (rounded up); the schema admits these suffixes only for
// sizing, while resources may use any quantity Kubernetes accepts.
local suffixes = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024, k: 1000 / 1048576, M: 1e6 / 1048576, G: 1e9 / 1048576, T: 1e12 / 1048576 };
local mebibytes(quantity) =
  local text = std.toString(quantity);
  local suffix = [s for s in std.objectFields(suffixes) if std.endsWith(text, s)];
  local number = if suffix == [] then text else std.substr(text, 0, std.length(text) - std.length(suffix[0]));
  std.ceil(std.parseJson(number) * (if suffix == [] then 1 / 1048576 else suffixes[suffix[0]]));

// airflow.cfg values may be written as strings ("16") in the free-form config; anything but a
// whole number is null here, and the option-type check reports it.
local integer(value) =
  if std.isNumber(value) then (if std.floor(value) == value then value else null)
  else if std.isString(value) && value != '' && std.all([std.member('0123456789', c) for c in std.stringChars(value)]) then std.parseInt(value)
  else null;
local configValue(section, key, default) = integer(std.get(std.get(airflow.config, section, {}), key, default));

local parallelism = configValue('core', 'parallelism', 32);
local perDag = configValue('core', 'max_active_tasks_per_dag', 16);
local task = mebibytes(sizing.task_memory);

local celerySlots = airflow.celery.workers.concurrency;

local limitOf(resources) = std.get(std.get(resources, 'limits', {}), 'memory', null);

// A pod that runs `slots` tasks next to its own `base` memory, with the key of its limit.
local podErrors(key, resources, base, slots, what, slotsKey) =
  local limit = limitOf(resources);
  local needed = mebibytes(base) + slots * task;
  local fitting = if limit == null then 0 else std.max(0, std.floor((mebibytes(limit) - mebibytes(base)) / task));
  if limit == null || mebibytes(limit) >= needed then []
  else [err(key + '.resources.limits.memory', '%s cannot hold %s: each running task is a process in that pod, so it needs %s (sizing.%s) + %d x %dMi (sizing.task_memory) = %dMi; raise the limit to at least %dMi%s'
                 % [std.manifestJson(limit), what, base, if key == 'scheduler' then 'scheduler_memory' else 'celery_worker_memory',
                    slots, task, needed, needed, if fitting > 0 then ', or lower %s to %d or less' % [slotsKey, fitting] else ''])];

local unboundedErrors =
  if parallelism == null || perDag == null then []
  else if std.member(executors, 'LocalExecutor') && parallelism == 0 then
    [err('config.core.parallelism', 'is 0 (no limit) with the LocalExecutor: every queued task would start a process in the scheduler\'s pod until it is OOM-killed; set a number of task slots that fits scheduler.resources.limits.memory')]
  else [];

local localErrors =
  if parallelism != null && std.member(executors, 'LocalExecutor') && parallelism > 0 then
    podErrors('scheduler', airflow.scheduler.resources, sizing.scheduler_memory, parallelism,
              "the LocalExecutor's %d task slots ([core] parallelism)" % parallelism, 'parameters.airflow.config.core.parallelism')
  else [];

local celeryErrors =
  if std.member(executors, 'CeleryExecutor') then
    podErrors('celery.workers', airflow.celery.workers.resources, sizing.celery_worker_memory, celerySlots,
              "a Celery worker's %d task slots (celery.workers.concurrency)" % celerySlots, 'parameters.airflow.celery.workers.concurrency')
  else [];

// Each scheduler runs at most [core] parallelism tasks at once: a per-DAG cap above what all of
// them run together promises a DAG more than the environment ever gives it.
local schedulers = airflow.scheduler.replicas;
local perDagErrors =
  if parallelism != null && perDag != null && parallelism > 0 && perDag > parallelism * schedulers then
    [err('config.core.max_active_tasks_per_dag', '%d is more than the %d tasks the environment runs at once ([core] parallelism %d x %d scheduler%s): lower it to at most %d, or raise parallelism'
                                                 % [perDag, parallelism * schedulers, parallelism, schedulers, if schedulers == 1 then '' else 's', parallelism * schedulers])]
  else [];

unboundedErrors + localErrors + celeryErrors + perDagErrors
