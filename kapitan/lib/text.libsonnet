// Filling text templates (configuration files, scripts). go-jsonnet implements std.format (`%`)
// in Jsonnet, walking the template one character at a time: the 3.6 KB webserver_config.py took
// about 40 ms of every environment's compile, a third of it. `fill` cuts the template at its
// placeholders with std.split and std.splitLimit, which go-jsonnet runs natively.
{
  // Whether `str` contains `part` (not empty). std.member and std.findSubstr on strings are
  // Jsonnet code in go-jsonnet, which tries every position: about 2 ms for a 50-character URL.
  contains(str, part):: std.length(std.split(str, part)) > 1,

  // `template`: text whose only placeholders are %(name)s (no other `%` directive, no `%%`);
  // `values`: an object giving each name a string or a number. Values are inserted as they are,
  // never searched for placeholders themselves.
  fill(template, values)::
    local parts = std.split(template, '%(');
    parts[0] + std.join('', [
      local nameAndRest = std.splitLimit(part, ')s', 1);
      if std.length(nameAndRest) != 2 || !std.objectHas(values, nameAndRest[0]) then
        error 'text.fill: a placeholder %(' + std.substr(part, 0, 40) + ' has no value (values: ' + std.join(', ', std.objectFields(values)) + ')'
      else std.toString(values[nameAndRest[0]]) + nameAndRest[1]
      for part in parts[1:]
    ]),
}
