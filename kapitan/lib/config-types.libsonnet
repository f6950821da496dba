// airflow.cfg values of the wrong type for an option Airflow knows, refused at compile time.
// Airflow reads a value's type only when its code first asks for it: `airflow config lint` passes
// `parallelism = lots`, then the scheduler stops on it. The kind of each option (how Airflow's code
// reads it) is recorded in kapitan/schemas/airflow-config-options/<version>.json by
// `airflow-gitops config-options`; this file parses the text airflow.cfg will hold the way
// Airflow's getters do (airflow/_shared/configuration/parser.py in Airflow 3.3), after
// configparser has stripped it:
//   boolean    getboolean: true, false, t, f, 1, 0 in any case; anything after a # is ignored
//   integer    getint: int(text), else float(text) when it is a whole, finite number ("8.0", "1e3")
//   float      getfloat: float(text), inf and nan included
//   timedelta  gettimedelta: empty, or int(text) seconds
//   [values]   conf.validate() at start-up: empty, or exactly one of them (the case matters)
// Left to `airflow-gitops check-airflow`, which reads the compiled file with Airflow itself:
// "json" and "import" options, text Airflow expands or interpolates before reading it ($VAR, %,
// {{ templates }}), and text with characters outside printable ASCII (Python's int() reads
// non-ASCII digits and spaces).

local textLib = import 'text.libsonnet';

// The text of airflow.cfg, as config.libsonnet renders a value.
local iniValue(v) = if std.isBoolean(v) then (if v then 'True' else 'False') else std.toString(v);

// The kinds parsed here ("json" and "import" are not).
local parsed = { boolean: true, integer: true, float: true, timedelta: true };

local checkable(value, text) =
  !std.isString(value)
  || (std.all([(c >= ' ' && c <= '~') || c == '\t' for c in std.stringChars(text)])
      && !textLib.contains(text, '$') && !textLib.contains(text, '%') && !textLib.contains(text, '{{'));

local isDigits(s) = s != '' && std.all([c >= '0' && c <= '9' for c in std.stringChars(s)]);
// Python's digit groups: an underscore only between digits (1_000).
local isDigitPart(s) = std.all([isDigits(group) for group in std.split(s, '_')]);
local unsigned(s) = if std.startsWith(s, '+') || std.startsWith(s, '-') then s[1:] else s;

// int(text)
local isPyInt(s) = isDigitPart(unsigned(s));

// float(text) for a decimal (not inf or nan): its parts, underscores dropped, or null.
local pyDecimal(s) =
  local parts = std.splitLimit(std.asciiLower(unsigned(s)), 'e', 1);
  local mantissa = std.split(parts[0], '.');
  local whole = mantissa[0];
  local fraction = if std.length(mantissa) == 2 then mantissa[1] else '';
  local exponent = if std.length(parts) == 2 then parts[1] else '0';
  if std.length(mantissa) <= 2 && (whole != '' || fraction != '')
     && (whole == '' || isDigitPart(whole)) && (fraction == '' || isDigitPart(fraction))
     && isDigitPart(unsigned(exponent))
  then {
    negative: std.startsWith(s, '-'),
    whole: std.strReplace(whole, '_', ''),
    fraction: std.strReplace(fraction, '_', ''),
    exponent: std.parseInt(std.strReplace(exponent, '_', '')),
  }
  else null;

local isPyFloat(s) = std.member(['inf', 'infinity', 'nan'], std.asciiLower(unsigned(s))) || pyDecimal(s) != null;

// Whether float(text) is whole and finite, getint's fallback. At 1e16 and above every double is
// whole, and from about 1.8e308 float() gives inf (decided on 17 digits: a value within 1e-16 of
// that limit may be refused); std.parseJson would fail the compile there. Below 1e16 the double
// is computed (std.parseJson rounds as Python does) from the text made valid JSON.
local isWholeFloat(s) =
  local d = pyDecimal(s);
  local digits = d.whole + d.fraction;
  local nonZero = [i for i in std.range(0, std.length(digits) - 1) if digits[i] != '0'];
  if d == null then false
  else if nonZero == [] then true
  else
    local magnitude = std.length(d.whole) - 1 - nonZero[0] + d.exponent;  // value in [10^m, 10^(m+1))
    local significant = (digits[nonZero[0]:] + '00000000000000000')[:17];
    if magnitude >= 16 then magnitude < 308 || (magnitude == 308 && significant < '17976931348623158')
    else
      local whole = std.lstripChars(d.whole, '0');
      local x = std.parseJson((if d.negative then '-' else '') + (if whole == '' then '0' else whole)
                              + (if d.fraction == '' then '' else '.' + d.fraction) + 'e' + std.toString(d.exponent));
      std.floor(x) == x;

local isPyBoolean(s) =
  local lowered = std.asciiLower(s);
  local value = std.stripChars(std.split(lowered, '#')[0], ' \t');
  std.member(['t', 'true', '1', 'f', 'false', '0'], value);

// The problem with `text` for an option of `kind`, or null.
local problem(kind, text, where) =
  local s = std.stripChars(text, ' \t');
  local shown = "'" + text + "'";
  if std.isArray(kind) then
    if s == '' || std.member(kind, s) then null
    else '%s is not one of %s (Airflow %s checks %s at start-up; the case matters)'
         % [shown, std.join(', ', [v for v in kind if v != '']), where.version, where.option]
  else if kind == 'boolean' then
    if isPyBoolean(s) then null
    else '%s is not a boolean (Airflow %s reads %s as a boolean: true, false, t, f, 1 or 0, in any case)' % [shown, where.version, where.option]
  else if kind == 'integer' then
    if isPyInt(s) || isWholeFloat(s) then null
    else '%s is not an integer (Airflow %s reads %s as an integer)' % [shown, where.version, where.option]
  else if kind == 'float' then
    if isPyFloat(s) then null
    else '%s is not a number (Airflow %s reads %s as a float)' % [shown, where.version, where.option]
  else if kind == 'timedelta' then
    if s == '' || isPyInt(s) then null
    else '%s is not a whole number of seconds (Airflow %s reads %s as an integer number of seconds)' % [shown, where.version, where.option]
  else null;

// Errors for parameters.airflow.config, given the `sections` of the option file of
// airflow.version; sections and options the file does not know are someone else's errors.
function(airflow, sections, targetFile)
  local unchecked = std.get(airflow, 'provider_config_sections', []);
  local errors(section, key) =
    local value = airflow.config[section][key];
    local text = iniValue(value);
    local found = if checkable(value, text) then problem(sections[section][key], text, { version: airflow.version, option: '[%s] %s' % [section, key] });
    if found == null then [] else ['%s: parameters.airflow.config.%s.%s: %s' % [targetFile, section, key, found]];
  std.flattenArrays([
    errors(section, key)
    for section in std.objectFields(airflow.config)
    if std.objectHas(sections, section) && !std.member(unchecked, section)
    for key in std.objectFields(airflow.config[section])
    if std.objectHas(sections[section], key)
       && (std.isArray(sections[section][key]) || std.objectHas(parsed, sections[section][key]))
  ])
