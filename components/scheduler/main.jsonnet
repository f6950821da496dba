// `airflow scheduler`. With the KubernetesExecutor it launches worker pods, so it alone gets a
// service-account token and a Role limited to pods in its own namespace. With the
// LocalExecutor tasks run here, so it needs the DAGs. With the CeleryExecutor it queues tasks
// in the broker (wired in airflow.libsonnet).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local c = p.scheduler;
local name = a.names.scheduler;

local main =
  a.container('scheduler', ['scheduler'], c.resources,
              // Signs the workload tokens; serves task logs (checked with the API secret key)
              // only where tasks run in it; queues into Celery.
              ['database', 'fernet-key', 'jwt-secret']
              + (if a.isLocalExecutor then ['api-secret-key'] else [])
              + (if a.isCeleryExecutor then ['broker', 'result-backend'] else []))
  + k.container.withPorts([k.container.containerPort('health', 8974)])
  + k.container.withProbes(
    readiness=k.probe.http('/health', 'health', periodSeconds=15, timeoutSeconds=10, failureThreshold=3),
    liveness=k.probe.http('/health', 'health', periodSeconds=30, timeoutSeconds=10, failureThreshold=5),
    startup=k.probe.http('/health', 'health', periodSeconds=10, failureThreshold=30),
  )
  + (if a.isKubernetesExecutor then k.container.withVolumeMounts([k.container.mount('pod-template', a.paths.podTemplates, readOnly=true)]) else {});

local rbac =
  if a.isKubernetesExecutor then [
    k.rbac.role(name, a.namespace, [
      k.rbac.rule([''], ['pods'], ['create', 'delete', 'get', 'list', 'patch', 'watch']),
      k.rbac.rule([''], ['pods/log'], ['get', 'list']),
    ]) + k.object.withLabels(a.labels('scheduler')),
    k.rbac.roleBinding(name, a.namespace, name, name) + k.object.withLabels(a.labels('scheduler')),
  ] else [];

local deploymentPatch =
  if a.isKubernetesExecutor then { spec+: { template+: { metadata+: { annotations+: { 'checksum/pod-template': a.podTemplateChecksum } } } } }
  else {};

local objects = a.component('scheduler', name, c, main,
                            needsDags=a.isLocalExecutor,
                            groomLogs=true,
                            extraVolumes=if a.isKubernetesExecutor then [k.volume.configMap('pod-template', a.names.podTemplate)] else [],
                            apiAccess=a.isKubernetesExecutor);

k.files([objects[0] + deploymentPatch] + objects[1:] + rbac)
