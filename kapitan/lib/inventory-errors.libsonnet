// Explains a JSON Schema error of parameters.airflow for people: the key path, what is wrong and
// what is allowed. Imported by inventory.libsonnet only when the check fails (go-jsonnet parses a
// file when its import is first evaluated, and parsing costs every target's compile).
function(schema, instance, targetFile, reason)
local lines(s) = std.split(s, '\n');

// "On instance['dags']['git_sync']['period']:" -> ['dags', 'git_sync', 'period']
local instancePath(reason) =
  local found = [l for l in lines(reason) if std.startsWith(l, 'On instance')];
  local raw = if found == [] then '' else std.stripChars(std.substr(found[0], 11, std.length(found[0])), ':');
  local bracketed = std.strReplace(std.strReplace(raw, "['", '['), "']", ']');
  if std.length(bracketed) < 2 then []
  else std.split(std.substr(bracketed, 1, std.length(bracketed) - 2), '][');

local resolve(node) =
  if std.isObject(node) && std.objectHas(node, '$ref') then
    local path = std.split(std.substr(node['$ref'], 2, std.length(node['$ref']) - 2), '/');
    resolve(std.foldl(function(n, k) n[k], path, schema)) + { [k]: node[k] for k in std.objectFields(node) if k != '$ref' }
  else node;

// Walks schema and instance together, so that an `if`/`then` branch that applies to this
// instance (auth: ssh) lends its description to the error.
local conditionHolds(condition, instance) =
  std.isObject(instance) && std.all([
    std.objectHas(instance, k) && instance[k] == condition.properties[k].const
    for k in std.objectFields(condition.properties)
  ]);

local child(state, key) =
  local n = resolve(state.schema);
  local instance = if std.isObject(state.instance) && std.objectHas(state.instance, key) then state.instance[key] else null;
  local base =
    if std.objectHas(n, 'properties') && std.objectHas(n.properties, key) then n.properties[key]
    else if std.objectHas(n, 'additionalProperties') && std.isObject(n.additionalProperties) then n.additionalProperties
    else if std.objectHas(n, 'items') then n.items
    else {};
  local conditional = [
    c['then'].properties[key]
    for c in (if std.objectHas(n, 'allOf') then n.allOf else [])
    if std.objectHas(c, 'if') && conditionHolds(c['if'], state.instance)
       && std.objectHas(c['then'].properties, key) && std.objectHas(c['then'].properties[key], 'description')
  ];
  {
    schema: if conditional == [] then base else resolve(base) + { description: conditional[0].description },
    instance: instance,
  };

local schemaAt(path) = resolve(std.foldl(child, path, { schema: schema, instance: instance }).schema);

local friendly(message) =
  local types = {
    integer: 'an integer', string: 'a string', boolean: 'a boolean (true or false)',
    object: 'a mapping of keys to values', array: 'a list', number: 'a number',
  };
  std.foldl(
    function(m, t) std.strReplace(m, "is not of type '%s'" % t, 'is not %s' % types[t]),
    std.objectFields(types),
    message
  );

local describe(reason) =
  local path = instancePath(reason);
  local node = schemaAt(path);
  local first = lines(reason)[0];
  local patternAt = std.findSubstr(' does not match ', first);
  // A regular expression means little to a reader: say what is expected instead.
  local message =
    if patternAt != [] && std.objectHas(node, 'description') then
      '%s is not %s' % [std.substr(first, 0, patternAt[0]), node.description]
    else if std.length(std.findSubstr(' should be non-empty', first)) > 0 && std.objectHas(node, 'description') then
      'is empty: set it to %s' % node.description
    // oneOf: both alternatives set, or neither.
    else if (std.length(std.findSubstr(' is valid under each of ', first)) > 0 || std.length(std.findSubstr(' is not valid under any of ', first)) > 0)
            && std.objectHas(node, 'description') then
      'must be %s' % node.description
    else friendly(first);
  local unexpected = std.length(std.findSubstr('properties are not allowed', message)) > 0;
  local hint =
    if unexpected && std.objectHas(node, 'properties') then
      ' (allowed keys: %s)' % std.join(', ', std.objectFields(node.properties))
    else if std.objectHas(node, 'enum') || patternAt != [] || std.length(std.findSubstr('is empty: ', message)) > 0
            || std.startsWith(message, 'must be ') then ''
    else if std.objectHas(node, 'description') then ' (expected %s)' % node.description
    else '';
  '%s: %s: %s%s' % [targetFile, std.join('.', ['parameters', 'airflow'] + path), message, hint];

describe(reason)
