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

// SimpleAuthManager opens its password file for writing ("a+"): write it, owner-only, into a
// writable emptyDir before start, from the admin password in the Secret (mounted as a file, and
// JSON-escaped by Python).
local adminPasswordDir = '/opt/airflow/admin-password';
local writePasswords =
  k.container.new('write-admin-passwords', a.image, p.image.pull_policy)
  + k.container.withCommand(['python', '-c', |||
    import json, os, sys
    password = open(sys.argv[2]).read()
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, json.dumps({"admin": password}).encode())
  |||, a.paths.passwordsFile, adminPasswordDir + '/admin-password'])
  + k.container.withVolumeMounts([
    k.container.mount('auth', a.paths.auth),
    k.container.mount('admin-password', adminPasswordDir, readOnly=true),
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
                k.volume.secret('admin-password', a.names.adminPasswords),
              ],
              extraInitContainers=[writePasswords])
  + [service]
)
