// Everything an environment compiles to, in one Jsonnet evaluation (the inventory is read and
// checked once): compiled/<env>/manifests (components/main.jsonnet), and the objects that make
// Argo CD or Flux apply them (components/argocd, components/flux).
local inv = import 'inventory.libsonnet';
local manifests = import 'main.jsonnet';
// Only the engine this environment uses (the other's files would be empty anyway).
local engine = inv.airflow.gitops.engine;
local argocd = if engine == 'argocd' then import 'argocd/main.jsonnet' else {};
local flux = if engine == 'flux' then import 'flux/main.jsonnet' else {};

local under(directory, files) = { [directory + '/' + name]: files[name] for name in std.objectFields(files) };

// Nothing is read from the inventory before it passed its checks.
inv.whenValid(under('manifests', manifests) + under('argocd', argocd) + under('flux', flux))
