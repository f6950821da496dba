// Not an environment: what brings every environment into a cluster, once per GitOps engine.
// compiled/bootstrap/argocd (environments on Argo CD) and compiled/bootstrap/flux (on Flux);
// each is empty when no environment uses that engine.
local argocd = import 'argocd-bootstrap/main.jsonnet';
local flux = import 'flux-bootstrap/main.jsonnet';

local under(directory, files) = { [directory + '/' + name]: files[name] for name in std.objectFields(files) };

under('argocd', argocd) + under('flux', flux)
