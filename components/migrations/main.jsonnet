// `airflow db migrate` as a plain Job (no Helm hook). Its name carries a hash of the image, the
// Airflow version and the Job's own pod template: a new image gives a new Job that runs once, an
// unchanged one never re-runs, and the immutable template is never patched in place (a change of
// the Job itself, e.g. its resources, also gives a new name; `db migrate` is idempotent).
// airflow.cfg is not part of the hash: a config change does not re-run migrations.
// No TTL: a Job deleted after it finished would be re-created by the GitOps engine and run again.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = a.params;
local container =
  a.container('db-migrate', ['db', 'migrate'], p.migrations.resources, ['database'], direct=true)
  + k.container.withVolumeMounts(a.standaloneMounts);

local pod =
  k.podSpec.new([container], 'airflow-migrations')
  + k.podSpec.withVolumes(a.standaloneVolumes + [a.secretsVolume(container.secretNeeds)])
  + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
  + k.podSpec.withImagePullSecrets(p.image.pull_secrets);

// `db migrate` also migrates the auth manager's own tables (FAB's users, roles and sessions):
// another auth manager needs a new run, so the name covers it too.
local name = 'airflow-db-migrate-' + std.substr(kap.sha256(a.image + '|' + p.version + '|' + a.authManager + '|' + std.manifestJsonMinified(pod)), 0, 10);

k.files([
  k.job.new(name, a.namespace, pod)
  + k.job.withBackoffLimit(p.migrations.backoff_limit)
  + k.job.withLabels(a.labels('db-migrations'))
  + k.job.withPodLabels(a.labels('db-migrations'))
  // Flux applies server-side and cannot patch a Job's immutable template. The name's hash
  // covers the pod spec, image and version but not the template's labels (parameters.airflow.labels):
  // should only those change, Flux would fail the apply forever. With force it deletes
  // and re-creates the Job instead, which re-runs the idempotent `airflow db migrate` once.
  // Argo CD ignores the annotation.
  + k.job.withAnnotations({ 'kustomize.toolkit.fluxcd.io/force': 'enabled' }),
  a.serviceAccount('airflow-migrations', 'db-migrations'),
])
