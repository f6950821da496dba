// Every component of an environment in one evaluation: the inventory is read and checked once
// and the shared libraries are evaluated once per target (one evaluation per component would
// repeat all of that a dozen times). Each component returns no files when its feature is off.
local k = import 'k8s.libsonnet';

local components = [
  import 'namespace/main.jsonnet',
  import 'config/main.jsonnet',
  import 'secrets/main.jsonnet',
  import 'storage/main.jsonnet',
  import 'git-sync/main.jsonnet',
  import 'migrations/main.jsonnet',
  import 'api-server/main.jsonnet',
  import 'scheduler/main.jsonnet',
  import 'dag-processor/main.jsonnet',
  import 'triggerer/main.jsonnet',
  import 'workers/main.jsonnet',
  import 'postgres/main.jsonnet',
];

std.foldl(function(files, component) files + component, components, {})
