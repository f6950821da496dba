// The Argo CD Application that applies compiled/<env>/manifests, when this environment's
// engine is Argo CD. Secrets in the manifests are Kapitan ref tags: the Application renders
// through the kapitan-refs plugin (see the bootstrap target) that reveals them at apply time.
local argocd = import 'argocd.libsonnet';
local inv = import 'inventory.libsonnet';

local p = inv.airflow;
local g = p.gitops;

{
  ['application-airflow-' + p.environment]: argocd.application(
    name='airflow-' + p.environment,
    namespace=g.argocd.namespace,
    project=g.argocd.project,
    repoURL=g.repo_url,
    revision=g.revision,
    path='compiled/' + p.environment + '/manifests',
    server=g.argocd.destination_server,
    destinationNamespace=p.namespace,
    prune=g.argocd.prune,
    selfHeal=g.argocd.self_heal,
    // Ref tags need revealing; ExternalSecrets are plain objects.
    sourceType=if p.secrets.mode == 'kapitan-refs' then 'plugin' else 'kustomize',
    // Removing the environment from Git (the app of apps prunes this Application) removes its
    // workloads too; the namespace and the claims holding data stay (Delete=false).
    cascade=true,
  ),
}
