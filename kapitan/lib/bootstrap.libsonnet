// What the bootstrap targets share: the environments one GitOps engine delivers, and the check
// that they agree on what a single bootstrap can only have once (repository, revision, ...).
local kap = import 'lib/kapitan.libjsonnet';

local all = kap.inventory_global();
local targetFile(t) = 'inventory/targets/%s.yml' % t;
local engineNames = { argocd: 'Argo CD', flux: 'Flux' };
local get(obj, path) = std.foldl(function(o, key) o[key], std.split(path, '.'), obj);

{
  // Target names (= compiled/<name>) whose gitops.engine is `engine`, sorted.
  targets(engine):: [
    t for t in std.objectFields(all)
    if std.objectHas(all[t].parameters, 'airflow') && all[t].parameters.airflow.gitops.engine == engine
  ],

  airflow(t):: all[t].parameters.airflow,

  // The first environment's gitops settings, once every environment has the same `keys`
  // (paths under parameters.airflow.gitops); a compile error naming the file and key otherwise.
  shared(engine, keys)::
    local ts = $.targets(engine);
    local first = $.airflow(ts[0]).gitops;
    local conflicts = [
      [t, key]
      for t in ts
      for key in keys
      if get($.airflow(t).gitops, key) != get(first, key)
    ];
    if conflicts != [] then
      local t = conflicts[0][0], key = conflicts[0][1];
      error '%s: parameters.airflow.gitops.%s: %s differs from %s in %s; every %s environment is brought by one bootstrap (compiled/bootstrap/%s), so they must be equal' % [
        targetFile(t), key, std.manifestJson(get($.airflow(t).gitops, key)),
        std.manifestJson(get(first, key)), targetFile(ts[0]), engineNames[engine], engine,
      ]
    else first,
}
