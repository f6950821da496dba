// Sign-in mistakes the schema cannot express (parameters.airflow.auth), each naming the target
// file, the key and what to set. Called by inventory.libsonnet with the parameters it checks.
// `missingRefErrors(key, value)`: the error of a `{ref}` never written (inventory.libsonnet's check).
function(airflow, targetFile, missingRefErrors)
local auth = airflow.auth;
local fab = auth.fab;
local kc = auth.keycloak;
local dev = airflow.profile == 'dev';
local isFab = auth.manager == 'fab';
local method = fab.method;
local err(key, message) = '%s: parameters.airflow.auth.%s: %s' % [targetFile, key, message];

// Roles FAB creates, and those of [fab] custom_roles (a JSON object of role -> permissions).
local customRoles =
  local raw = std.get(std.get(airflow.config, 'fab', {}), 'custom_roles', '{}');
  if std.isString(raw) && std.length(std.stripChars(raw, ' ')) > 0 && std.stripChars(raw, ' ')[0] == '{' then std.objectFields(std.parseJson(raw)) else [];
local roles = ['Admin', 'Op', 'User', 'Viewer', 'Public'] + customRoles;
local roleErrors(key, role) =
  if std.member(roles, role) then [] else [err(key, '%s is not a role of the FAB auth manager; roles: %s (more with [fab] custom_roles)' % [std.manifestJson(role), std.join(', ', roles)])];

local isHttp(url) = std.startsWith(url, 'http://');
local httpErrors(key, url) =
  if dev || !isHttp(url) then [] else [err(key, '%s is plain http in a %s environment: tokens and client secrets would cross the network unencrypted; use https (only profiles.dev may use http)' % [std.manifestJson(url), airflow.profile])];

local refErrors(key, value) = missingRefErrors('auth.' + key, value);
local secretErrors(key, value, what) =
  if value == null then [err(key, 'is missing: %s comes from a secret: set it to {ref: auth/NAME} (a Kapitan ref, or the External Secrets store key <key_prefix>/auth/NAME) or {secret_name: SECRET, secret_key: KEY} (an existing Secret)' % what)]
  else refErrors(key, value);

local providers = fab.oauth.providers;
local providerNames = [o.name for o in providers];
local presetUrl = { oidc: 'discovery_url', entra: 'tenant_id', okta: 'domain', keycloak: 'server_url' };
local groupless = ['google', 'github'];

local simpleErrors =
  if auth.manager == 'simple' && !dev then [err('manager', 'is simple (SimpleAuthManager: one shared admin, no roles, for development only) in a %s environment: choose how people sign in with one of the classes airflow.auth.fab-database, airflow.auth.fab-oauth, airflow.auth.fab-ldap or airflow.auth.keycloak' % airflow.profile)]
  else [];

// Settings of a method or manager that is not in use would do nothing, silently.
local unusedErrors =
  (if (!isFab || method != 'database') && fab.users != [] then [err('fab.users', 'users are created only with the FAB auth manager\'s method database (class airflow.auth.fab-database); with oauth or ldap people are registered at their first sign-in')] else [])
  + (if (!isFab || method != 'oauth') && providers != [] then [err('fab.oauth.providers', 'is set, but sign-in does not use OAuth: use the class airflow.auth.fab-oauth, or remove it')] else [])
  + (if (!isFab || method != 'ldap') && fab.ldap.url != '' then [err('fab.ldap.url', 'is set, but sign-in does not use LDAP: use the class airflow.auth.fab-ldap, or remove it')] else [])
  + (if (!isFab || method == 'database') && fab.roles_mapping != {} then [err('fab.roles_mapping', 'maps the groups of OAuth or LDAP sign-ins, but sign-in does not use them (method %s)' % (if isFab then method else auth.manager + ' auth manager'))] else [])
  + (if auth.manager != 'keycloak' && (kc.server_url != '' || kc.realm != '') then [err('keycloak', 'is set, but the auth manager is %s: use the class airflow.auth.keycloak, or remove it' % auth.manager)] else []);

local databaseErrors =
  if !isFab || method != 'database' then []
  else
    local usernames = [fab.admin.username] + [u.username for u in fab.users];
    [err('fab.users', '%s is listed twice (the admin is %s)' % [std.manifestJson(name), std.manifestJson(fab.admin.username)]) for name in std.uniq(std.sort(usernames)) if std.count(usernames, name) > 1]
    + std.flattenArrays([roleErrors('fab.users[%s].role' % u.username, u.role) + refErrors('fab.users[%s].password' % u.username, u.password) for u in fab.users]);

local mappingErrors =
  if !isFab || method == 'database' then []
  else
    std.flattenArrays([roleErrors('fab.roles_mapping.%s' % group, role) for group in std.objectFields(fab.roles_mapping) for role in fab.roles_mapping[group]])
    + (if fab.default_role == '' then [] else roleErrors('fab.default_role', fab.default_role));

local oauthErrors =
  if !isFab || method != 'oauth' then []
  else if providers == [] then [err('fab.oauth.providers', 'is empty with method oauth: list at least one provider ({name, type, client_id, client_secret, ...})')]
  else
    [err('fab.oauth.providers', 'two providers are named %s' % std.manifestJson(name)) for name in std.uniq(std.sort(providerNames)) if std.count(providerNames, name) > 1]
    + std.flattenArrays([
      local key = 'fab.oauth.providers[%s]' % o.name;
      (if std.member(groupless, o.type) && o.name != o.type then [err(key + '.name', 'a %s provider must be named %s (FAB reads its users by that name)' % [o.type, o.type])] else [])
      + (if std.objectHas(presetUrl, o.type) && std.get(o, presetUrl[o.type], '') == '' then [err(key + '.' + presetUrl[o.type], 'is missing: a provider of type %s needs it' % o.type)] else [])
      + (if o.type == 'keycloak' && std.get(o, 'realm', '') == '' then [err(key + '.realm', 'is missing: a provider of type keycloak needs its realm')] else [])
      + (if std.member(groupless, o.type) && (std.objectHas(o, 'groups_claim') || std.objectHas(o, 'username_claim')) then [err(key, '%s sends no OpenID Connect claims to choose from: remove groups_claim and username_claim' % o.type)] else [])
      + secretErrors(key + '.client_secret', std.get(o, 'client_secret', null), 'the client secret')
      + httpErrors(key + '.discovery_url', std.get(o, 'discovery_url', ''))
      + httpErrors(key + '.server_url', std.get(o, 'server_url', ''))
      for o in providers
    ])
    + (if fab.roles_mapping != {} && std.all([std.member(groupless, o.type) for o in providers]) then
         [err('fab.roles_mapping', 'maps groups, but %s send no groups: every user gets default_role' % std.join(' and ', providerNames))]
       else []);

local ldap = fab.ldap;
local ldapErrors =
  if !isFab || method != 'ldap' then []
  else
    (if ldap.url == '' then [err('fab.ldap.url', 'is empty with method ldap: set the directory, such as ldaps://ldap.example.com:636')] else [])
    + (if ldap.search_base == '' then [err('fab.ldap.search_base', 'is empty: set where users are searched, such as ou=people,dc=example,dc=com')] else [])
    + (if ldap.bind_dn == '' then [err('fab.ldap.bind_dn', 'is empty: set the service account that searches the directory (and bind_password)')] else [])
    + secretErrors('fab.ldap.bind_password', std.get(ldap, 'bind_password', null), 'the bind password')
    + (if !dev && std.startsWith(ldap.url, 'ldap://') && !ldap.start_tls then [err('fab.ldap.start_tls', 'is false with %s in a %s environment: passwords would cross the network in clear; use ldaps:// or start_tls: true' % [ldap.url, airflow.profile])] else [])
    + (if std.objectHas(ldap, 'ca') && std.startsWith(ldap.url, 'ldap://') && !ldap.start_tls then [err('fab.ldap.ca', 'is set, but %s uses no TLS: use ldaps:// or start_tls: true' % ldap.url)] else []);

local keycloakErrors =
  if auth.manager != 'keycloak' then []
  else
    (if kc.server_url == '' then [err('keycloak.server_url', 'is empty: set the Keycloak server, such as https://sso.example.com')] else [])
    + (if kc.realm == '' then [err('keycloak.realm', 'is empty: set the realm Airflow\'s client lives in')] else [])
    + secretErrors('keycloak.client_secret', std.get(kc, 'client_secret', null), 'the client secret')
    + httpErrors('keycloak.server_url', kc.server_url)
    + (if !kc.setup_job.enabled then []
       else (if kc.setup_job.admin_username == '' then [err('keycloak.setup_job.admin_username', 'is empty: the setup Job signs in to Keycloak as this administrator')] else [])
            + secretErrors('keycloak.setup_job.admin_password', std.get(kc.setup_job, 'admin_password', null), 'the Keycloak administrator\'s password'));

simpleErrors + unusedErrors + databaseErrors + mappingErrors + oauthErrors + ldapErrors + keycloakErrors
