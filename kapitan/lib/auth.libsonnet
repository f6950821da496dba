// Sign-in (parameters.airflow.auth): which auth manager the api-server runs, its airflow.cfg
// settings, the FAB auth manager's webserver_config.py, and the secrets sign-in reads (OAuth
// client secrets, the LDAP bind password, user passwords, Keycloak's client secret), each a file
// of the read-only `auth-secrets` volume, never an environment variable or a literal.
// Checked in the code of apache-airflow-providers-fab 3.10.2 (Flask-AppBuilder 5.2.2) and
// apache-airflow-providers-keycloak 0.11.2 for Airflow 3.3.2.
local e = import 'airflow-environment.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';
local secrets = import 'secrets.libsonnet';
local text = import 'text.libsonnet';

local p = e.params;
local auth = p.auth;
local fab = auth.fab;
local manager = auth.manager;
local isFab = manager == 'fab';
local isKeycloak = manager == 'keycloak';
local method = if isFab then fab.method else null;

local paths = {
  // [fab] config_file: FAB reads its Flask settings from this file (providers/fab/www/app.py).
  fabConfigDir: '/opt/airflow/fab',
  fabConfig: '/opt/airflow/fab/webserver_config.py',
  secrets: '/opt/airflow/auth-secrets',
  ldapCaDir: '/opt/airflow/ldap-ca',
  ldapCa: '/opt/airflow/ldap-ca/ca.crt',
};
local names = {
  fabConfig: 'airflow-fab-config',
  // The Secret holding the `{ref: ...}` values (Kapitan refs, or written by an ExternalSecret).
  secret: 'airflow-auth',
  users: 'airflow-auth-users',
  keycloakSetup: 'airflow-keycloak-setup',
};

// Every secret sign-in reads, by its file in the auth-secrets volume, with its source: a
// parameters.airflow `secret_value` ({ref} or {secret_name, secret_key}) and who reads it.
local oauthProviders = if method == 'oauth' then fab.oauth.providers else [];
local users = if method == 'database' then fab.users else [];
local setupJob = auth.keycloak.setup_job;
local secretValues =
  [{ file: 'oauth-%s-client-secret' % o.name, key: 'auth.fab.oauth.providers[%s].client_secret' % o.name, value: std.get(o, 'client_secret', null), reader: 'api-server' } for o in oauthProviders]
  + (if method == 'ldap' then [{ file: 'ldap-bind-password', key: 'auth.fab.ldap.bind_password', value: std.get(fab.ldap, 'bind_password', null), reader: 'api-server' }] else [])
  + [{ file: 'user-%s-password' % u.username, key: 'auth.fab.users[%s].password' % u.username, value: u.password, reader: 'users' } for u in users]
  + (if isKeycloak then [{ file: 'keycloak-client-secret', key: 'auth.keycloak.client_secret', value: std.get(auth.keycloak, 'client_secret', null), reader: 'api-server' }] else [])
  + (if isKeycloak && setupJob.enabled then [{ file: 'keycloak-admin-password', key: 'auth.keycloak.setup_job.admin_password', value: std.get(setupJob, 'admin_password', null), reader: 'keycloak-setup' }] else []);
local valuesOf(reader) = [s for s in secretValues if s.reader == reader && s.value != null];
local fromRef(s) = std.objectHas(s.value, 'ref');

// The read-only volume of `reader`'s secret files (mode 0440, group fsGroup).
local secretsVolume(reader) =
  local values = valuesOf(reader);
  local refs = [s for s in values if fromRef(s)];
  {
    name: 'auth-secrets',
    projected: {
      defaultMode: 288,
      sources:
        (if refs == [] then [] else [{ secret: { name: names.secret, items: [{ key: s.file, path: s.file } for s in refs] } }])
        + [{ secret: { name: s.value.secret_name, items: [{ key: s.value.secret_key, path: s.file }] } } for s in values if !fromRef(s)],
    },
  };

// What changes when a secret value changes in Git: the ref's data (Kapitan refs), the store key
// and secrets.generation (External Secrets), the Secret and key (an existing Secret).
local identity(s) =
  if fromRef(s) then 'ref ' + secrets.valueIdentity(s.value.ref, s.value.ref)
  else 'secret %s %s' % [s.value.secret_name, s.value.secret_key];
local secretsChecksum(reader) = kap.sha256(std.join('\n', [std.toString(p.secrets.generation)] + [s.file + ' ' + identity(s) for s in valuesOf(reader)]));

// A Python literal of a JSON value; {secret: FILE} becomes a read of that file at start-up.
local py(v) =
  if std.isObject(v) && std.objectHas(v, 'secret') && std.length(v) == 1 then '_secret(%s)' % std.manifestJson(v.secret)
  else if std.isObject(v) then '{' + std.join(', ', ['%s: %s' % [std.manifestJson(key), py(v[key])] for key in std.objectFields(v)]) + '}'
  else if std.isArray(v) then '[' + std.join(', ', [py(x) for x in v]) + ']'
  else if std.isBoolean(v) then (if v then 'True' else 'False')
  else if v == null then 'None'
  else std.manifestJson(v);

// OAuth providers. google and github keep FAB's own user-info code (it switches on those names;
// neither provider sends groups); the OpenID Connect types are read by the security manager
// below from the ID token and the userinfo endpoint, with the configured claims.
local oidcDiscovery(o) =
  if o.type == 'oidc' then o.discovery_url
  else if o.type == 'entra' then 'https://login.microsoftonline.com/%s/v2.0/.well-known/openid-configuration' % o.tenant_id
  else if o.type == 'okta' then 'https://%s/.well-known/openid-configuration' % o.domain
  else if o.type == 'keycloak' then '%s/realms/%s/.well-known/openid-configuration' % [std.rstripChars(o.server_url, '/'), o.realm]
  else null;
local defaultScopes = {
  oidc: ['openid', 'profile', 'email'],
  entra: ['openid', 'profile', 'email'],
  okta: ['openid', 'profile', 'email', 'groups'],
  keycloak: ['openid', 'profile', 'email'],
  google: ['openid', 'email', 'profile'],
  github: ['read:user', 'user:email'],
};
local icons = { google: 'fa-google', github: 'fa-github', entra: 'fa-windows', okta: 'fa-circle-o', keycloak: 'fa-key', oidc: 'fa-key' };
local isOidc(o) = oidcDiscovery(o) != null;
local remoteApp(o) =
  { client_id: o.client_id, client_secret: { secret: 'oauth-%s-client-secret' % o.name }, client_kwargs: { scope: std.join(' ', std.get(o, 'scopes', defaultScopes[o.type])) } }
  + (if isOidc(o) then { server_metadata_url: oidcDiscovery(o) }
     else if o.type == 'google' then {
       server_metadata_url: 'https://accounts.google.com/.well-known/openid-configuration',
       api_base_url: 'https://www.googleapis.com/oauth2/v2/',
     } else {
       api_base_url: 'https://api.github.com/',
       access_token_url: 'https://github.com/login/oauth/access_token',
       authorize_url: 'https://github.com/login/oauth/authorize',
     });
local oauthSettings = [
  { name: o.name, icon: icons[o.type], token_key: 'access_token', remote_app: remoteApp(o) }
  for o in oauthProviders
];
local oidcClaims = {
  [o.name]: {
    groups: std.get(o, 'groups_claim', if o.type == 'entra' then 'roles' else 'groups'),
    username: std.get(o, 'username_claim', 'preferred_username'),
  }
  for o in oauthProviders
  if isOidc(o)
};

local ldap = fab.ldap;
local ldapCa = std.get(ldap, 'ca', null);
local methodSettings =
  if method == 'database' then { AUTH_TYPE: { code: 'AUTH_DB' } }
  else if method == 'oauth' then { AUTH_TYPE: { code: 'AUTH_OAUTH' }, OAUTH_PROVIDERS: oauthSettings }
  else {
    AUTH_TYPE: { code: 'AUTH_LDAP' },
    AUTH_LDAP_SERVER: ldap.url,
    AUTH_LDAP_USE_TLS: ldap.start_tls,
    // FAB's default accepts any certificate: demand a valid one, from the configured CA if any.
    AUTH_LDAP_TLS_DEMAND: true,
    AUTH_LDAP_ALLOW_SELF_SIGNED: false,
    AUTH_LDAP_TLS_CACERTFILE: if ldapCa == null then '' else paths.ldapCa,
    AUTH_LDAP_BIND_USER: ldap.bind_dn,
    AUTH_LDAP_BIND_PASSWORD: { secret: 'ldap-bind-password' },
    AUTH_LDAP_SEARCH: ldap.search_base,
    AUTH_LDAP_SEARCH_FILTER: ldap.search_filter,
    AUTH_LDAP_UID_FIELD: ldap.uid_attribute,
    AUTH_LDAP_GROUP_FIELD: ldap.group_attribute,
    AUTH_LDAP_FIRSTNAME_FIELD: ldap.first_name_attribute,
    AUTH_LDAP_LASTNAME_FIELD: ldap.last_name_attribute,
    AUTH_LDAP_EMAIL_FIELD: ldap.email_attribute,
  };
// oauth and ldap: people are registered at their first sign-in, with the roles of their
// groups (re-synced at every sign-in) or, in no mapped group, the default role (the security
// manager below: FAB itself would add its registration role to everyone's).
local registrationSettings =
  if method == 'database' then { AUTH_USER_REGISTRATION: false }
  else {
    AUTH_USER_REGISTRATION: true,
    AUTH_ROLES_MAPPING: fab.roles_mapping,
    AUTH_ROLES_SYNC_AT_LOGIN: true,
  };

local pySetting(key, v) = key + ' = ' + (if std.isObject(v) && std.objectHas(v, 'code') then v.code else py(v));
local webserverConfig = text.fill(|||
  # Generated by Kapitan from inventory/targets/%(env)s.yml (parameters.airflow.auth). Do not edit:
  # change the inventory. The FAB auth manager reads it ([fab] config_file); secrets are read
  # from the files of the auth-secrets volume at start-up, never written here.
  from flask_appbuilder.const import AUTH_DB, AUTH_LDAP, AUTH_OAUTH

  from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride


  def _secret(name):
      # A file written by an editor or `echo` ends with a newline that is not part of the value.
      with open(f"%(secrets)s/{name}") as f:
          return f.read().removesuffix("\n")


  %(settings)s

  # OpenID Connect providers: the claims holding a user's name and groups.
  _OIDC_CLAIMS = %(claims)s
  # The role of someone whose groups map to no role; None: they are refused.
  _DEFAULT_ROLE = %(defaultRole)s


  class AirflowGitOpsSecurityManager(FabAirflowSecurityManagerOverride):
      """FAB's security manager, reading the configured claims of OpenID Connect providers, giving
      the default role only to someone in no mapped group, and refusing a sign-in without a role."""

      def get_oauth_user_info(self, provider, resp):
          claims_of = _OIDC_CLAIMS.get(provider)
          if claims_of is None:
              return super().get_oauth_user_info(provider, resp)
          # The userinfo endpoint's claims, then those of the ID token authlib has verified.
          claims = {}
          if self.oauth_remotes[provider].load_server_metadata().get("userinfo_endpoint"):
              claims.update(self.oauth_remotes[provider].userinfo(token=resp))
          claims.update(resp.get("userinfo") or {})
          groups = claims.get(claims_of["groups"]) or []
          return {
              "username": claims.get(claims_of["username"]) or claims.get("email") or claims.get("sub", ""),
              "first_name": claims.get("given_name", ""),
              "last_name": claims.get("family_name", ""),
              "email": claims.get("email", ""),
              "role_keys": [groups] if isinstance(groups, str) else list(groups),
          }

      def _oauth_calculate_user_roles(self, userinfo):
          return self._roles_of(userinfo.get("role_keys", []))

      def _ldap_calculate_user_roles(self, user_attributes):
          return self._roles_of(self.ldap_extract_list(user_attributes, self.auth_ldap_group_field))

      def _roles_of(self, groups):
          roles = list(self.get_roles_from_keys(groups))
          if not roles and _DEFAULT_ROLE is not None:
              default = self.find_role(_DEFAULT_ROLE)
              roles = [default] if default is not None else []
          return roles

      def auth_user_oauth(self, userinfo, rotate_session_id=True):
          return self._refuse_without_role(super().auth_user_oauth(userinfo, rotate_session_id))

      def auth_user_ldap(self, username, password, rotate_session_id=True):
          return self._refuse_without_role(super().auth_user_ldap(username, password, rotate_session_id))

      @staticmethod
      def _refuse_without_role(user):
          # A user without a role could sign in and see nothing: refused instead.
          return None if user is not None and not user.roles else user


  SECURITY_MANAGER_CLASS = AirflowGitOpsSecurityManager
|||, {
  env: e.env,
  secrets: paths.secrets,
  settings: std.join('\n', [pySetting(key, (methodSettings + registrationSettings)[key]) for key in std.objectFields(methodSettings + registrationSettings)]),
  claims: py(oidcClaims),
  defaultRole: py(if method == 'database' || fab.default_role == '' then null else fab.default_role),
});

// The users the auth Job creates or updates (method database): the admin with the generated
// admin password, then the listed users. No secret in it: passwords are files.
local usersSpec = {
  users: [
    { username: fab.admin.username, role: 'Admin', email: fab.admin.email, first_name: fab.admin.first_name, last_name: fab.admin.last_name, password_file: e.secretFile('admin-password') },
  ] + [
    { username: u.username, role: u.role, email: u.email, first_name: std.get(u, 'first_name', u.username), last_name: std.get(u, 'last_name', '-'), password_file: paths.secrets + '/user-%s-password' % u.username }
    for u in users
  ],
};

local keycloakSection = auth.keycloak;

// The port of a server URL (scheme://host[:port]/...).
local urlPort(url) =
  local parts = std.split(url, '://');
  local hostPort = std.split(parts[1], '/')[0];
  local colon = std.split(hostPort, ':');
  if std.length(colon) > 1 && !std.endsWith(hostPort, ']') then std.parseInt(colon[std.length(colon) - 1])
  else { https: 443, http: 80, ldaps: 636, ldap: 389 }[parts[0]];
local identityUrls =
  [oidcDiscovery(o) for o in oauthProviders if isOidc(o)]
  + (if method == 'ldap' && ldap.url != '' then [ldap.url] else [])
  + (if isKeycloak && keycloakSection.server_url != '' then [keycloakSection.server_url] else []);

{
  authManager: manager,
  // The ports the api-server reaches identity providers on (NetworkPolicy egress).
  identityProviderPorts: std.uniq(std.sort([urlPort(u) for u in identityUrls])),
  isSimpleAuth: manager == 'simple',
  isFabAuth: isFab,
  isKeycloakAuth: isKeycloak,
  authMethod: method,
  authPaths: paths,
  authNames: names,

  // airflow.cfg settings of the auth manager (config.libsonnet merges them).
  authConfigSections:
    {
      core: { auth_manager: {
        simple: 'airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager',
        fab: 'airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager',
        keycloak: 'airflow.providers.keycloak.auth_manager.keycloak_auth_manager.KeycloakAuthManager',
      }[manager] } + (
        // One admin, its password written by the api-server's init container.
        if manager == 'simple' then { simple_auth_manager_users: 'admin:admin', simple_auth_manager_passwords_file: e.paths.passwordsFile } else {}
      ),
    } + (
      if isFab then {
        fab: {
          config_file: paths.fabConfig,
        } + (
          // Behind a TLS-terminating ingress: secure cookies, and OAuth callback URLs built from
          // the forwarded scheme and host (what people open, api_server.base_url).
          if std.startsWith(p.api_server.base_url, 'https://') then { cookie_secure: 'True', enable_proxy_fix: 'True' } else {}
        ),
      } else {}
    ) + (
      if isKeycloak then {
        keycloak_auth_manager: { server_url: keycloakSection.server_url, realm: keycloakSection.realm, client_id: keycloakSection.client_id },
      } else {}
    ),

  fabConfigFile: webserverConfig,
  fabConfigChecksum: kap.sha256(webserverConfig),
  authUsersSpec: usersSpec,
  // Secrets of `reader` (api-server, users, keycloak-setup): the files, their volume, the
  // checksum rolling the pod when one changes.
  authSecretFiles(reader):: [s.file for s in valuesOf(reader)],
  authSecretsVolume(reader):: secretsVolume(reader),
  authSecretsMount: k.container.mount('auth-secrets', paths.secrets, readOnly=true),
  authSecretsChecksum(reader):: secretsChecksum(reader),
  // The Secret's data of the `{ref}` values: ref tags (kapitan-refs), or store keys (an
  // ExternalSecret's, external-secrets); null when no value is a ref.
  authRefs:: { [s.file]: s.value.ref for s in secretValues if s.value != null && fromRef(s) },
  ldapCaVolume:
    if method != 'ldap' || ldapCa == null then null
    else if std.objectHas(ldapCa, 'config_map') then k.volume.configMap('ldap-ca', ldapCa.config_map, [{ key: ldapCa.key, path: 'ca.crt' }])
    else { name: 'ldap-ca', secret: { secretName: ldapCa.secret_name, items: [{ key: ldapCa.secret_key, path: 'ca.crt' }] } },
  ldapCaMount: k.container.mount('ldap-ca', paths.ldapCaDir, readOnly=true),
}
