// One `kubectl apply -k compiled/bootstrap/flux` brings every Flux environment: this directory's
// kustomization.yaml includes each compiled/<env>/flux, and the Kustomization airflow-bootstrap
// keeps applying this directory from Git, so an environment added (or removed) later is picked up
// (or pruned) on `git push` with no second manual step. Nothing when no environment uses Flux.
local bootstrap = import 'bootstrap.libsonnet';
local flux = import 'flux.libsonnet';

local targets = bootstrap.targets('flux');
local g = bootstrap.shared('flux', ['repo_url', 'revision', 'flux.namespace', 'flux.secret_ref', 'flux.interval', 'flux.timeout']);

local labels = {
  'app.kubernetes.io/name': 'airflow-gitops',
  'app.kubernetes.io/component': 'bootstrap',
  'app.kubernetes.io/managed-by': 'kapitan',
};
local source = flux.gitRepository('airflow-bootstrap', g.flux.namespace, labels, g);
local selfApply = flux.kustomization('airflow-bootstrap', g.flux.namespace, labels, source,
                                './compiled/bootstrap/flux', g.flux.interval, g.flux.timeout);

if targets == [] then {} else {
  'gitrepository-airflow-bootstrap': source,
  'kustomization-airflow-bootstrap': selfApply,
  // The environments' own directories (compiled/<env>/flux), relative to compiled/bootstrap/flux.
  kustomization: flux.kustomizeFile(
    ['gitrepository-airflow-bootstrap.yaml', 'kustomization-airflow-bootstrap.yaml']
    + ['../../%s/flux' % t for t in targets]
  ),
}
