// Argo CD objects shared by an environment's Application and the bootstrap target.
{
  // The config-management plugin that reveals Kapitan ref tags at apply time (secrets never
  // leave the cluster's repo-server in plain text, and never exist in Git).
  pluginName: 'kapitan-refs',
  pluginVersion: 'v1',

  labels(component):: {
    'app.kubernetes.io/name': 'airflow-gitops',
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'kapitan',
  },

  // sourceType: 'plugin' (reveal Kapitan refs), 'kustomize' (a directory with kustomization.yaml,
  // detected by Argo CD) or 'directory'.
  // `cascade`: deleting the Application deletes what it applied (Argo CD's resources finalizer),
  // except objects annotated Delete=false; without it they would be left running, unmanaged.
  application(name, namespace, project, repoURL, revision, path, server, destinationNamespace, prune, selfHeal, sourceType='plugin', cascade=false):: {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name: name, namespace: namespace, labels: $.labels('application') }
              + (if cascade then { finalizers: ['resources-finalizer.argocd.argoproj.io'] } else {}),
    spec: {
      project: project,
      source: { repoURL: repoURL, targetRevision: revision, path: path }
              + (if sourceType == 'plugin' then { plugin: { name: $.pluginName + '-' + $.pluginVersion } }
                 else if sourceType == 'directory' then { directory: { recurse: true } }
                 else {}),
      destination: { server: server, namespace: destinationNamespace },
      revisionHistoryLimit: 10,
      syncPolicy: {
        automated: { prune: prune, selfHeal: selfHeal },
        syncOptions: [
          // The Namespace is one of our objects (with its Pod Security labels).
          'CreateNamespace=false',
          // Delete what left Git only after everything else is healthy.
          'PruneLast=true',
          'ServerSideApply=true',
        ],
        retry: { limit: 5, backoff: { duration: '10s', factor: 2, maxDuration: '3m' } },
      },
    },
  },
}
