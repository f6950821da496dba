// `airflow api-server`: the UI, the REST API and the Execution API the workers call.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local c = p.api_server;
// Readiness asks Airflow's health (it queries the database); liveness and start-up only ask
// whether the server answers (/api/v2/version: no database, no authentication), so that a slow
// database never restarts every replica at once.
local health = '/api/v2/monitor/health';
local alive = '/api/v2/version';

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

// What sign-in adds to the api-server, by auth manager (kapitan/lib/auth.libsonnet):
//   simple    the password file written by an init container
//   fab       webserver_config.py (read-only), the sign-in secrets as files, the LDAP CA
//   keycloak  the client secret as a file, read through a `_CMD` option
local authSecrets = a.authSecretFiles('api-server');
local withSecrets(x) = if authSecrets == [] then [] else x;
local signIn =
  if a.isSimpleAuth then {
    mounts: [k.container.mount('auth', a.paths.auth)],
    env: [],
    volumes: [
      k.volume.emptyDir('auth', medium='Memory', sizeLimit='1Mi'),
      k.volume.secret('admin-password', a.names.adminPasswords),
    ],
    initContainers: [writePasswords],
    secrets: ['admin-password'],
    annotations: {},
  } else {
    mounts:
      (if a.isFabAuth then [k.container.mount('fab-config', a.authPaths.fabConfigDir, readOnly=true)] else [])
      + withSecrets([a.authSecretsMount])
      + (if a.ldapCaVolume == null then [] else [a.ldapCaMount]),
    env:
      // Without the newline a file written by `echo` ends with (Airflow keeps a _CMD's output as is).
      if a.isKeycloakAuth then [k.container.envValue('AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_SECRET_CMD', 'sh -c \'printf %%s "$(cat %s/keycloak-client-secret)"\'' % a.authPaths.secrets)]
      else [],
    volumes:
      (if a.isFabAuth then [k.volume.configMap('fab-config', a.authNames.fabConfig, [{ key: 'webserver_config.py', path: 'webserver_config.py' }])] else [])
      + withSecrets([a.authSecretsVolume('api-server')])
      + (if a.ldapCaVolume == null then [] else [a.ldapCaVolume]),
    initContainers: [],
    secrets: [],
    // A change of webserver_config.py or of a sign-in secret rolls the api-server.
    annotations:
      (if a.isFabAuth then { 'checksum/fab-config': a.fabConfigChecksum } else {})
      + (if authSecrets == [] then {} else { 'checksum/auth-secrets': a.authSecretsChecksum('api-server') }),
  };

local main =
  a.container('api-server', ['api-server'], c.resources, ['database', 'fernet-key', 'api-secret-key', 'jwt-secret'])
  + k.container.withPorts([k.container.containerPort('http', c.port)])
  + k.container.withProbes(
    readiness=k.probe.http(health, 'http', periodSeconds=10),
    liveness=k.probe.http(alive, 'http', periodSeconds=15, failureThreshold=5),
    startup=k.probe.http(alive, 'http', periodSeconds=10, failureThreshold=30),
  )
  + k.container.withVolumeMounts(signIn.mounts)
  + k.container.withEnv(signIn.env);

local service =
  k.service.new(a.names.apiServer, a.namespace, a.selectorLabels('api-server'), [k.service.port('http', c.service.port)])
  + k.service.withType(c.service.type)
  + k.service.withLabels(a.labels('api-server'))
  + k.service.withAnnotations(c.service.annotations);

local hpa = c.autoscaling;
local objects = a.component('api-server', a.names.apiServer, c, main,
                            extraVolumes=signIn.volumes,
                            extraInitContainers=signIn.initContainers,
                            extraSecrets=signIn.secrets,
                            extraAnnotations=signIn.annotations,
                            // With the KubernetesExecutor, a running task's log is read from its pod.
                            apiAccess=a.isKubernetesExecutor,
                            minReplicas=if hpa.enabled then hpa.min_replicas else c.replicas,
                            maxReplicas=if hpa.enabled then hpa.max_replicas else c.replicas,
                            autoscaled=hpa.enabled);

local autoscaler =
  if hpa.enabled then
    k.hpa.new(a.names.apiServer, a.namespace, objects[0], hpa.min_replicas, hpa.max_replicas, hpa.target_cpu_utilization)
    // Scale in slowly: a UI session or a worker's Execution API call should not lose its server.
    + k.hpa.withScaleDown(300, 1)
    + k.hpa.withLabels(a.labels('api-server'));

local ingress =
  local i = c.ingress;
  if i.enabled then
    k.object.new('networking.k8s.io/v1', 'Ingress', a.names.apiServer, a.namespace) {
      spec: (if i.class_name == '' then {} else { ingressClassName: i.class_name })
            + (if std.get(i, 'tls_secret_name', '') == '' then {} else { tls: [{ hosts: [i.host], secretName: i.tls_secret_name }] })
            + {
              rules: [{
                host: i.host,
                http: { paths: [{
                  path: i.path,
                  pathType: 'Prefix',
                  backend: { service: { name: a.names.apiServer, port: { name: 'http' } } },
                }] },
              }],
            },
    }
    + k.object.withLabels(a.labels('api-server'))
    + k.object.withAnnotations(std.get(i, 'annotations', {}));

local httpRoute =
  local r = c.http_route;
  if r.enabled then
    k.object.new('gateway.networking.k8s.io/v1', 'HTTPRoute', a.names.apiServer, a.namespace) {
      spec: {
        parentRefs: [
          { name: ref.name }
          + (if std.get(ref, 'namespace', '') == '' then {} else { namespace: ref.namespace })
          + (if std.get(ref, 'section_name', '') == '' then {} else { sectionName: ref.section_name })
          for ref in r.parent_refs
        ],
        rules: [{
          matches: [{ path: { type: 'PathPrefix', value: r.path } }],
          backendRefs: [{ name: a.names.apiServer, port: c.service.port }],
        }],
      } + (if std.get(r, 'hostnames', []) == [] then {} else { hostnames: r.hostnames }),
    }
    + k.object.withLabels(a.labels('api-server'));

k.files(objects + [service, autoscaler, ingress, httpRoute]
        + (if a.isKubernetesExecutor then a.podReader(a.names.apiServer, 'api-server') else []))
