// Flux objects shared by an environment's components/flux and the bootstrap target.
{
  // Flux takes http(s):// and ssh:// URLs only: git@host:path becomes ssh://git@host/path.
  url(repoUrl)::
    if std.startsWith(repoUrl, 'git@') then
      local hostAndPath = std.splitLimit(repoUrl, ':', 1);
      'ssh://' + hostAndPath[0] + '/' + hostAndPath[1]
    else repoUrl,

  // This repository, at `branch`, as a Flux source.
  gitRepository(name, namespace, labels, gitops):: {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'GitRepository',
    metadata: { name: name, namespace: namespace, labels: labels },
    spec: {
      interval: gitops.flux.interval,
      url: $.url(gitops.repo_url),
      ref: { branch: gitops.revision },
    } + (if gitops.flux.secret_ref == '' then {} else { secretRef: { name: gitops.flux.secret_ref } }),
  },

  kustomization(name, namespace, labels, source, path, interval, timeout):: {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: { name: name, namespace: namespace, labels: labels },
    spec: {
      interval: interval,
      timeout: timeout,
      retryInterval: '1m',
      sourceRef: { kind: 'GitRepository', name: source.metadata.name },
      path: path,
      prune: true,
    },
  },

  // kustomize's own file listing the objects (and directories) to apply.
  kustomizeFile(resources):: {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: resources,
  },
}
