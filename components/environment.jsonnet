// Everything an environment compiles to, in one Jsonnet evaluation (the inventory is read and
// checked once): compiled/<env>/manifests (components/main.jsonnet), and the objects that make
// Argo CD or Flux apply them (components/argocd, components/flux).
local manifests = import 'main.jsonnet';
local argocd = import 'argocd/main.jsonnet';
local flux = import 'flux/main.jsonnet';

local under(directory, files) = { [directory + '/' + name]: files[name] for name in std.objectFields(files) };

under('manifests', manifests) + under('argocd', argocd) + under('flux', flux)
