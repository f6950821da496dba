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
// Every Airflow process (not the bundled database).
local airflowPods = components(['api-server', 'scheduler', 'dag-processor', 'triggerer', 'worker', 'db-migrations']);
local tcp(port) = { protocol: 'TCP', port: port };

local policy(name, podSelector, ingress=null, egress=null) =
  k.object.new('networking.k8s.io/v1', 'NetworkPolicy', name, a.namespace) {
    spec: {
      podSelector: podSelector,
      policyTypes: (if ingress != null then ['Ingress'] else []) + (if egress != null then ['Egress'] else []),
    } + (if ingress != null then { ingress: ingress } else {})
      + (if egress != null then { egress: egress } else {}),
  } + k.object.withLabels(a.labels('network-policy'));

local database =
  if p.database.mode == 'bundled' then [{ to: [{ podSelector: { matchLabels: a.selectorLabels('postgres') } }], ports: [tcp(5432)] }]
  // An external database's address is not in the inventory: its port, anywhere.
  else [{ ports: [tcp(5432)] }];

k.files(if !np.enabled then [] else [
  policy('airflow-default-deny', {}, ingress=[], egress=[]),
  policy('airflow-dns', {}, egress=[{
    to: [{ namespaceSelector: {} }],
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
  policy('airflow-log-serving', components(['worker', 'scheduler', 'triggerer']), ingress=[{
    from: [{ podSelector: { matchLabels: a.selectorLabels('api-server') } }], ports: [tcp(8793), tcp(8794)],
  }]),
  policy('airflow-api-server-fetches-logs', components(['api-server']), egress=[{
    to: [{ podSelector: components(['worker', 'scheduler', 'triggerer']) }], ports: [tcp(8793), tcp(8794)],
  }]),
]
+ (if p.database.mode == 'bundled' then [
  policy('airflow-postgres', components(['postgres']), ingress=[{ from: [{ podSelector: airflowPods }], ports: [tcp(5432)] }]),
] else [])
+ (if np.worker_egress == 'any' then [
  // Tasks call external systems: task pods (and the scheduler running LocalExecutor tasks) reach anything.
  policy('airflow-task-egress', components(['worker'] + (if a.isKubernetesExecutor then [] else ['scheduler'])), egress=[{}]),
] else []))
