// The Flux objects that apply compiled/<env>/manifests, when this environment's engine is Flux
// (class gitops.flux); nothing otherwise. Applied once by hand (or by a Flux Kustomization
// pointing at compiled/<env>/flux), they make Flux reconcile the environment from Git:
//   GitRepository airflow-<env>                      this repository at gitops.revision
//   Kustomization airflow-<env>-base                 namespace, config, secrets, accounts, RBAC,
//                                                    PVCs, bundled PostgreSQL (health-checked)
//   Kustomization airflow-<env>-migrations           the `airflow db migrate` Job (waits until it
//                                                    succeeded), after base
//   Kustomization airflow-<env>-workloads            Deployments, Services, PDBs, after migrations
// compiled/bootstrap/flux gathers every Flux environment's directory in one apply.
// Each path is one of the directories components/main.jsonnet writes, with its own
// kustomization.yaml. Flux has no hooks: the Job runs because it is new (its name carries a hash).
// Flux cannot reveal Kapitan ref tags: a Flux environment takes its secrets from External Secrets
// (the compile refuses Flux with secrets.mode: kapitan-refs), health-checked in base.
local a = import 'airflow.libsonnet';
local flux = import 'flux.libsonnet';
local k = import 'k8s.libsonnet';

local p = a.params;
local g = p.gitops;
local f = g.flux;
local name = 'airflow-' + p.environment;
local manifests = 'compiled/' + p.environment + '/manifests';

local source = flux.gitRepository(name, f.namespace, a.labels('gitops'), g);

local kustomization(step, dependsOn, extra) =
  flux.kustomization(name + '-' + step, f.namespace, a.labels('gitops'), source,
                     './' + manifests + '/' + step, f.interval, f.timeout) + {
    spec+: { targetNamespace: p.namespace }
           + (if dependsOn == null then {} else { dependsOn: [{ name: name + '-' + dependsOn }] })
           + extra,
  };

// Every workload a Kustomization applies is waited for (Deployments and StatefulSets ready, Jobs
// succeeded), and in base every ExternalSecret (the operator must have written the Secrets before
// anything reads them): the objects of each directory, as components/main.jsonnet writes them.
local manifests = import '../main.jsonnet';
local checkedKinds = ['Deployment', 'StatefulSet', 'Job', 'ExternalSecret'];
local healthChecks(step) = [
  local obj = manifests[file];
  { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: p.namespace }
  for file in std.objectFields(manifests)
  if std.startsWith(file, step + '/') && std.objectHas(manifests[file], 'kind') && std.member(checkedKinds, manifests[file].kind)
];
local baseChecks = healthChecks('base');

local objects = [
  source,
  // Not wait: true: a ReadWriteMany claim of a WaitForFirstConsumer storage class stays Pending
  // until the migration Job mounts it, which would never happen. Only the bundled PostgreSQL
  // must be ready before migrations start.
  kustomization('base', null,
                if baseChecks != [] then { healthChecks: baseChecks } else {}),
  // wait: a Job is ready once it succeeded; a failed migration stops the workloads here.
  kustomization('migrations', 'base', { wait: true }),
  // The workloads and Jobs (not wait: true: a LoadBalancer Service still waiting for an
  // address is no reason to mark the environment failed).
  kustomization('workloads', 'migrations', { healthChecks: healthChecks('workloads') }),
];

// kustomization.yaml lets the bootstrap (compiled/bootstrap/flux) include this directory.
k.files(objects) + { kustomization: flux.kustomizeFile([k.fileName(o) + '.yaml' for o in objects]) }
