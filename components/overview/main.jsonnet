// compiled/<env>/README.md (output_type plain, inventory/classes/common.yml): what this
// environment runs, a diagram of its components and the files it came from, for the Git host.
// Outside compiled/<env>/manifests, so neither Argo CD nor Flux applies it.
local overview = import 'overview.libsonnet';

{ 'README.md': overview.readme }
