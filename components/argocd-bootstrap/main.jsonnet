// One `kubectl apply --server-side --field-manager=airflow-gitops -k compiled/bootstrap/argocd`
// brings every Argo CD environment: the AppProjects, an app-of-apps that picks up
// compiled/<env>/argocd/application-*.yaml, and the kapitan-refs config-management plugin with
// the argocd-repo-server sidecar it runs in. Nothing when no environment uses Argo CD.
local argocd = import 'argocd.libsonnet';
local bootstrap = import 'bootstrap.libsonnet';
local k = import 'k8s.libsonnet';

local environments = [bootstrap.airflow(t) for t in bootstrap.targets('argocd')];
local g = bootstrap.shared('argocd', ['repo_url', 'revision', 'argocd.namespace', 'argocd.project', 'argocd.plugin_image']);
local ns = g.argocd.namespace;
local cmName = 'argocd-cmp-' + argocd.pluginName;

// Only the kinds our components emit, in the environments' namespaces, from this repository.
local namespaced = [
  { group: '', kind: k } for k in ['ConfigMap', 'PersistentVolumeClaim', 'Secret', 'Service', 'ServiceAccount']
] + [
  { group: 'apps', kind: 'Deployment' }, { group: 'apps', kind: 'StatefulSet' }, { group: 'batch', kind: 'Job' },
  { group: 'policy', kind: 'PodDisruptionBudget' }, { group: 'networking.k8s.io', kind: 'NetworkPolicy' },
  { group: 'rbac.authorization.k8s.io', kind: 'Role' }, { group: 'rbac.authorization.k8s.io', kind: 'RoleBinding' },
  { group: 'external-secrets.io', kind: 'ExternalSecret' },
  { group: 'batch', kind: 'CronJob' }, { group: 'autoscaling', kind: 'HorizontalPodAutoscaler' },
  { group: 'networking.k8s.io', kind: 'Ingress' }, { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
  { group: 'keda.sh', kind: 'ScaledObject' }, { group: 'keda.sh', kind: 'TriggerAuthentication' },
  { group: 'monitoring.coreos.com', kind: 'ServiceMonitor' },
];

// And the kinds of the environments' extra_manifests, which the project must allow too.
local extraKinds(clusterScoped) =
  local all = [
    { group: local parts = std.split(o.apiVersion, '/'); if std.length(parts) > 1 then parts[0] else '', kind: o.kind }
    for e in environments
    for o in std.objectValues(e.extra_manifests)
  ];
  local wanted = [x for x in all if std.member(k.clusterScopedKinds, x.kind) == clusterScoped];
  std.set(wanted, function(x) x.group + '/' + x.kind);

local project(name, description, destinations, clusterKinds, namespacedKinds) = {
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'AppProject',
  metadata: { name: name, namespace: ns, labels: argocd.labels('project') },
  spec: {
    description: description,
    sourceRepos: [g.repo_url],
    destinations: destinations,
    clusterResourceWhitelist: clusterKinds,
    namespaceResourceWhitelist: namespacedKinds,
  },
};

local revealScript = |||
  set -eu
  # The repository root: the working directory is <root>/<the Application's path>.
  root="${PWD%/"$ARGOCD_APP_SOURCE_PATH"}"
  kapitan refs --reveal -f . --refs-path "$root/kapitan/refs" | python3 -c '
  import sys, yaml
  docs = [d for d in yaml.safe_load_all(sys.stdin)
          if d and not str(d.get("apiVersion", "")).startswith("kustomize.config.k8s.io")]
  yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)'
|||;

local plugin = {
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'ConfigManagementPlugin',
  metadata: { name: argocd.pluginName },
  spec: {
    version: argocd.pluginVersion,
    generate: { command: ['sh', '-c'], args: [revealScript] },
  },
};

if environments == [] then {} else {
  'appproject-airflow': project(
    g.argocd.project, 'Airflow environments compiled by Kapitan',
    [{ server: e.gitops.argocd.destination_server, namespace: e.namespace } for e in environments],
    std.set([{ group: '', kind: 'Namespace' }] + extraKinds(true), function(x) x.group + '/' + x.kind),
    std.set(namespaced + extraKinds(false), function(x) x.group + '/' + x.kind),
  ),
  'appproject-airflow-bootstrap': project(
    'airflow-bootstrap', 'The app-of-apps that creates one Application per Airflow environment',
    [{ server: 'https://kubernetes.default.svc', namespace: ns }],
    [],
    [{ group: 'argoproj.io', kind: 'Application' }],
  ),
  'application-airflow-bootstrap': argocd.application(
    name='airflow-bootstrap', namespace=ns, project='airflow-bootstrap', repoURL=g.repo_url, revision=g.revision,
    path='compiled', server='https://kubernetes.default.svc', destinationNamespace=ns,
    prune=true, selfHeal=true, sourceType='directory',
  // Every environment's Application; not this one, which is applied by hand once.
  ) + { spec+: { source+: { directory+: { include: '*/argocd/application-airflow-*.yaml', exclude: 'bootstrap/argocd/*' } } } },
  ['configmap-' + cmName]: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: cmName, namespace: ns, labels: argocd.labels('config-management-plugin') },
    data: { 'plugin.yaml': std.manifestYamlDoc(plugin, indent_array_in_object=true, quote_keys=false) + '\n' },
  },
  // Only the fields we add to Argo CD's own argocd-repo-server: server-side apply with a field
  // manager of our own merges them into the installed Deployment (containers and volumes are
  // lists keyed by name) and leaves every other field to whoever installed Argo CD.
  'deployment-argocd-repo-server': {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'argocd-repo-server', namespace: ns },
    spec: { template: { spec: {
      containers: [{
        name: argocd.pluginName,
        image: g.argocd.plugin_image,
        command: ['/var/run/argocd/argocd-cmp-server'],
        securityContext: {
          runAsNonRoot: true, runAsUser: 999, allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
        },
        volumeMounts: [
          { name: 'var-files', mountPath: '/var/run/argocd' },
          { name: 'plugins', mountPath: '/home/argocd/cmp-server/plugins' },
          { name: cmName, mountPath: '/home/argocd/cmp-server/config/plugin.yaml', subPath: 'plugin.yaml' },
          { name: 'cmp-tmp', mountPath: '/tmp' },
        ],
      }],
      volumes: [
        { name: cmName, configMap: { name: cmName } },
        { name: 'cmp-tmp', emptyDir: {} },
      ],
    } } },
  },
  kustomization: {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [
      'appproject-airflow.yaml', 'appproject-airflow-bootstrap.yaml',
      'application-airflow-bootstrap.yaml', 'configmap-' + cmName + '.yaml',
      'deployment-argocd-repo-server.yaml',
    ],
  },
}
