// The secrets every component shares, one Secret name each whatever their source:
// - kapitan-refs: Secrets holding Kapitan ref tags, generated once per environment, committed
//   under kapitan/refs, identical in every pod, never rotated by a compile;
// - external-secrets: ExternalSecret objects that make the External Secrets Operator write the
//   same Secrets from a store: no secret data in Git at all.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;

// The admin's first-login password can be revealed with
// `kapitan refs --reveal --tag '?{base64:targets/<env>/admin_password}'`.
k.files([
  if p.secrets.mode == 'external-secrets' then a.externalSecret(s.name, a.storeKeys(s.files))
  else k.secret.new(s.name, a.namespace, a.refData(s.files)) + k.secret.withLabels(a.labels('secrets'))
  for s in a.generatedSecrets
])
