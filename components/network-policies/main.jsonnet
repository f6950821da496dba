// NetworkPolicies: everything in the namespace is denied, in and out, then each flow Airflow
// needs is allowed by name. Off with network_policies.enabled: false (e.g. a CNI without
// NetworkPolicy support, where they would only mislead).
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local np = p.network_policies;
local components(names) = {
  matchLabels: { 'app.kubernetes.io/name': 'airflow', 'app.kubernetes.io/instance': a.env },
  matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: names }],
};
// Every Airflow process (not the services it depends on).
local airflowPods = components([
  'api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'celery-worker', 'flower', 'db-migrations',
  'housekeeping', 'airflow-objects', 'auth-users', 'keycloak-setup',
]);
// Who talks to the Celery broker: the scheduler queues, the workers consume, Flower watches.
local brokerClients = components(['scheduler', 'celery-worker', 'flower']);
// Pods that run tasks or serve their logs.
local taskPods = ['worker', 'celery-worker'] + (if a.isLocalExecutor then ['scheduler'] else []);
local tcp(port) = { protocol: 'TCP', port: port };

local policy(name, podSelector, ingress=null, egress=null) =
  k.object.new('networking.k8s.io/v1', 'NetworkPolicy', name, a.namespace) {
    spec: {
      podSelector: podSelector,
      policyTypes: (if ingress != null then ['Ingress'] else []) + (if egress != null then ['Egress'] else []),
    } + (if ingress != null then { ingress: ingress } else {})
      + (if egress != null then { egress: egress } else {}),
  } + k.object.withLabels(a.labels('network-policy'));

local bundledDb = p.database.mode == 'bundled';
local pgbouncer = p.database.pgbouncer.enabled;
local directDatabase =
  if bundledDb then [{ to: [{ podSelector: { matchLabels: a.selectorLabels('postgres') } }], ports: [tcp(5432)] }]
  // An external database's address is not in the inventory: its port, anywhere.
  else [{ ports: [tcp(p.database.external.port)] }];
// Through PgBouncer, and directly (migrations and `db clean` bypass it).
local database =
  directDatabase
  + (if pgbouncer then [{ to: [{ podSelector: { matchLabels: a.selectorLabels('pgbouncer') } }], ports: [tcp(a.pgbouncerPort)] }] else []);
local celeryBroker = a.isCeleryExecutor && p.celery.broker.mode == 'bundled';
local keda = a.isCeleryExecutor && p.celery.workers.autoscaling.mode == 'keda';
local statsd = p.metrics.mode == 'statsd';
// Elasticsearch and OpenSearch usually listen on their own port (9200); 443 is open already.
local logStorePort = if a.logStore == null || a.logStore.port == 443 then null else a.logStore.port;

k.files(if !np.enabled then [] else [
  policy('airflow-default-deny', {}, ingress=[], egress=[]),
  // network_policies.dns: the cluster's DNS pods, and addresses no pod selector matches (the
  // link-local address of NodeLocal DNSCache on every node).
  policy('airflow-dns', {}, egress=[{
    to: [
      { namespaceSelector: if np.dns.namespace_labels == {} then {} else { matchLabels: np.dns.namespace_labels } }
      + (if np.dns.pod_labels == {} then {} else { podSelector: { matchLabels: np.dns.pod_labels } }),
    ] + [{ ipBlock: { cidr: cidr } } for cidr in np.dns.ip_blocks],
    ports: [{ protocol: 'UDP', port: 53 }, tcp(53)],
  }]),
  // The UI, the REST API and the Execution API the workers call.
  policy('airflow-api-server', components(['api-server']), ingress=[{ ports: [tcp(p.api_server.port)] }]),
  policy('airflow-to-database', airflowPods, egress=database),
  policy('airflow-to-api-server', airflowPods, egress=[{
    to: [{ podSelector: { matchLabels: a.selectorLabels('api-server') } }], ports: [tcp(p.api_server.port)],
  }]),
  // git-sync and Git DAG bundles (SSH, HTTPS), remote logging and secrets backends (HTTPS),
  // and the Kubernetes API for the scheduler launching worker pods (443 or 6443).
  policy('airflow-egress-git-https', airflowPods, egress=[{ ports: [tcp(22), tcp(443), tcp(6443)] }]),
  // The API server reads logs of running tasks from the workers (8793) and the triggerer (8794).
  policy('airflow-log-serving', components(taskPods + ['triggerer']), ingress=[{
    from: [{ podSelector: { matchLabels: a.selectorLabels('api-server') } }], ports: [tcp(8793), tcp(8794)],
  }]),
  policy('airflow-api-server-fetches-logs', components(['api-server']), egress=[{
    to: [{ podSelector: components(taskPods + ['triggerer']) }], ports: [tcp(8793), tcp(8794)],
  }]),
]
+ (if pgbouncer then [
  policy('airflow-pgbouncer', components(['pgbouncer']), ingress=[{ from: [{ podSelector: airflowPods }], ports: [tcp(a.pgbouncerPort)] }], egress=directDatabase),
] else [])
+ (if celeryBroker then [
  policy('airflow-redis', components(['redis']), ingress=[{ from: [{ podSelector: brokerClients }], ports: [tcp(6379)] }]),
  policy('airflow-to-redis', brokerClients, egress=[{ to: [{ podSelector: { matchLabels: a.selectorLabels('redis') } }], ports: [tcp(6379)] }]),
] else if a.isCeleryExecutor then [
  // An external broker: its port, anywhere.
  policy('airflow-to-broker', brokerClients, egress=[{ ports: [tcp(p.celery.broker.external.port)] }]),
] else [])
+ (if a.isCeleryExecutor && p.celery.flower.enabled then [
  policy('airflow-flower', components(['flower']), ingress=[{ ports: [tcp(p.celery.flower.port)] }]),
] else [])
+ (if statsd then [
  policy('airflow-to-statsd', airflowPods, egress=[{
    to: [{ podSelector: { matchLabels: a.selectorLabels('statsd') } }], ports: [{ protocol: 'UDP', port: 9125 }, tcp(9125)],
  }]),
  // Airflow sends; Prometheus (in its own namespace) scrapes.
  policy('airflow-statsd', components(['statsd']), ingress=[
    { from: [{ podSelector: airflowPods }], ports: [{ protocol: 'UDP', port: 9125 }, tcp(9125)] },
    { ports: [tcp(9102)] },
  ]),
] else [])
+ (if p.metrics.mode == 'otel' then [
  policy('airflow-to-otel-collector', airflowPods, egress=[{ ports: [tcp(p.metrics.otel.port)] }]),
] else [])
+ (if logStorePort != null then [
  policy('airflow-to-log-store', airflowPods, egress=[{ ports: [tcp(logStorePort)] }]),
] else [])
// Sign-in: the identity providers' ports other than 443 (LDAP, a Keycloak on 8443...), for the
// api-server and the Keycloak setup Job.
+ (
  local ports = [port for port in a.identityProviderPorts if port != 443];
  if ports == [] then [] else [
    policy('airflow-to-identity-provider', components(['api-server', 'keycloak-setup']), egress=[{ ports: [tcp(port) for port in ports] }]),
  ]
)
+ (if bundledDb then [
  policy('airflow-postgres', components(['postgres']), ingress=[{
    from: [{ podSelector: airflowPods }]
          + (if pgbouncer then [{ podSelector: { matchLabels: a.selectorLabels('pgbouncer') } }] else [])
          // KEDA's operator queries the task counts from its own namespace.
          + (if keda then [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.celery.workers.autoscaling.keda.namespace } } }] else []),
    ports: [tcp(5432)],
  }]),
] else [])
+ (if np.worker_egress == 'any' then [
  // Tasks call external systems: task pods (and the scheduler running LocalExecutor tasks) reach anything.
  policy('airflow-task-egress', components(taskPods), egress=[{}]),
] else []))
