// `airflow api-server`: the UI, the REST API and the Execution API the workers call.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local c = p.api_server;
local health = '/api/v2/monitor/health';

local main =
  a.container('api-server', ['api-server'], c.resources)
  + k.container.withPorts([k.container.containerPort('http', c.port)])
  + k.container.withProbes(
    readiness=k.probe.http(health, 'http', periodSeconds=10),
    liveness=k.probe.http(health, 'http', periodSeconds=15, failureThreshold=5),
    startup=k.probe.http(health, 'http', periodSeconds=10, failureThreshold=30),
  )
  + k.container.withVolumeMounts([k.container.mount('auth', a.paths.auth)]);

// SimpleAuthManager opens its password file for writing ("a+"): copy the generated one from the
// Secret (mode 0440) into a writable emptyDir, owner-writable, before start.
local copyPasswords =
  k.container.new('copy-admin-passwords', a.image, p.image.pull_policy)
  + k.container.withCommand(['install', '-m', '0600', a.paths.authSecret + '/simple_auth_manager_passwords.json', a.paths.auth + '/simple_auth_manager_passwords.json'])
  + k.container.withVolumeMounts([
    k.container.mount('auth-secret', a.paths.authSecret, readOnly=true),
    k.container.mount('auth', a.paths.auth),
  ])
  + k.container.withResources({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } })
  + a.securityContext(true);

local service =
  k.service.new(a.names.apiServer, a.namespace, a.selectorLabels('api-server'), [k.service.port('http', c.service.port)])
  + k.service.withType(c.service.type)
  + k.service.withLabels(a.labels('api-server'))
  + k.service.withAnnotations(c.service.annotations);

k.files(
  a.component('api-server', a.names.apiServer, c, main,
              extraVolumes=[
                k.volume.emptyDir('auth', medium='Memory', sizeLimit='1Mi'),
                k.volume.secret('auth-secret', a.names.adminPasswords),
              ],
              extraInitContainers=[copyPasswords])
  + [service]
)
