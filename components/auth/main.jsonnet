// Sign-in objects of the FAB and Keycloak auth managers (parameters.airflow.auth; the logic is
// in kapitan/lib/auth.libsonnet):
// - the ConfigMap holding FAB's webserver_config.py, mounted read-only into the api-server;
// - the Secret of the `{ref: ...}` sign-in secrets (Kapitan ref tags, or an ExternalSecret);
// - method database: the Job creating the admin and the listed users, or updating them (role,
//   names, e-mail, password) so that Git wins. Its name carries a hash of the users, the script,
//   its pod and the identity of every password it sets: a change re-creates it (a new ref, a new
//   store key or secrets.generation), an unchanged one never re-runs;
// - Keycloak with setup_job.enabled: the Job creating the client's scopes, resources and
//   permissions in Keycloak (`airflow keycloak-auth-manager create-all`, idempotent).
// Both Jobs run after the migration Job (Argo CD wave 1, Flux's workloads Kustomization), as
// plain Jobs (no hooks), re-created by Flux rather than patched.
local a = import 'airflow.libsonnet';
local k = import 'k8s.libsonnet';
local kap = import 'lib/kapitan.libjsonnet';

local p = a.params;
local names = a.authNames;
local paths = a.authPaths;
local usersDir = '/opt/airflow/auth-users';

// Written once with `kapitan refs --write base64:targets/<env>/<ref> -f FILE` (README: Sign-in).
local refSecret = a.userRefSecret(names.secret, a.authRefs, 'auth');

local fabConfig =
  if a.isFabAuth then
    k.configMap.new(names.fabConfig, a.namespace, { 'webserver_config.py': a.fabConfigFile })
    + k.configMap.withLabels(a.labels('api-server'));

local pod(name, component, container, volumes) =
  k.podSpec.new([container], name)
  + k.podSpec.withInitContainers([a.waitForMigrations])
  + k.podSpec.withVolumes(volumes)
  + k.podSpec.withSecurityContext(p.security.run_as_user, p.security.run_as_group, p.security.fs_group)
  + a.placement({}, a.selectorLabels(component))
  + k.podSpec.withImagePullSecrets(p.image.pull_secrets);

local job(name, component, podSpec, hashed) =
  k.job.new(name + '-' + std.substr(kap.sha256(a.image + '|' + hashed + '|' + std.manifestJsonMinified(podSpec)), 0, 10), a.namespace, podSpec)
  + k.job.withBackoffLimit(3)
  + k.job.withLabels(a.labels(component))
  + k.job.withPodLabels(a.labels(component))
  // As for the migration Job: Flux re-creates it instead of patching an immutable template.
  + k.job.withAnnotations({ 'kustomize.toolkit.fluxcd.io/force': 'enabled' });

// Creates or updates each user through FAB's security manager, as `airflow users create` does,
// but idempotently: an existing user gets the inventory's role, names, e-mail and password.
local syncUsers = |||
  import json
  import sys

  from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
  from airflow.utils.providers_configuration_loader import providers_configuration_loaded


  def read(path):
      # A file written by an editor or `echo` ends with a newline that is not part of the value.
      with open(path) as f:
          return f.read().removesuffix("\n")


  @providers_configuration_loaded
  def main(spec_path):
      spec = json.load(open(spec_path))
      with get_application_builder() as appbuilder:
          sm = appbuilder.sm
          # The roles and their permissions, before the api-server's first start has made them.
          sm.sync_roles()
          for u in spec["users"]:
              role = sm.find_role(u["role"])
              if role is None:
                  names = sorted(r.name for r in sm.get_all_roles())
                  sys.exit(f"user {u['username']}: role {u['role']!r} does not exist; roles: {', '.join(names)}")
              password = read(u["password_file"])
              if not password:
                  sys.exit(f"user {u['username']}: the password file {u['password_file']} is empty")
              user = sm.find_user(username=u["username"])
              if user is None:
                  if not sm.add_user(u["username"], u["first_name"], u["last_name"], u["email"], role, password):
                      sys.exit(f"user {u['username']}: FAB could not create it (is {u['email']} another user's e-mail?)")
                  print(f"created {u['username']} ({u['role']})", flush=True)
                  continue
              user.first_name, user.last_name, user.email = u["first_name"], u["last_name"], u["email"]
              user.roles = [role]
              user.active = True
              sm.update_user(user)
              sm.reset_password(user.id, password)
              print(f"updated {u['username']} ({u['role']})", flush=True)


  main(sys.argv[1])
|||;
local usersJson = std.manifestJsonEx(a.authUsersSpec, '  ') + '\n';

local usersObjects =
  if a.authMethod == 'database' then
    local container =
      a.container('sync-users', ['python', usersDir + '/sync_users.py', usersDir + '/users.json'], p.migrations.resources, ['database', 'admin-password'], direct=true)
      + k.container.withVolumeMounts(a.standaloneMounts + [
        k.container.mount('auth-users', usersDir, readOnly=true),
        k.container.mount('fab-config', paths.fabConfigDir, readOnly=true),
      ] + (if a.authSecretFiles('users') == [] then [] else [a.authSecretsMount]));
    local podSpec = pod(names.users, 'auth-users', container, a.standaloneVolumes + [
      a.secretsVolume(container.secretNeeds),
      k.volume.configMap('auth-users', names.users),
      k.volume.configMap('fab-config', names.fabConfig),
    ] + (if a.authSecretFiles('users') == [] then [] else [a.authSecretsVolume('users')]));
    [
      k.configMap.new(names.users, a.namespace, { 'users.json': usersJson, 'sync_users.py': syncUsers }) + k.configMap.withLabels(a.labels('auth-users')),
      a.serviceAccount(names.users, 'auth-users'),
      job(names.users, 'auth-users', podSpec,
          usersJson + syncUsers + a.authSecretsChecksum('users') + std.toString(a.secretsChecksum(container.secretNeeds))),
    ]
  else [];

local keycloakObjects =
  local s = p.auth.keycloak.setup_job;
  if a.isKeycloakAuth && s.enabled then
    local container =
      a.container('create-all', [
        'bash', '-c',
        // The password is read from its file here, not written in the manifest.
        'exec airflow keycloak-auth-manager create-all --username "$0" --password "$(cat %s/keycloak-admin-password)" --user-realm "$1" --client-id "$2"' % paths.secrets,
        s.admin_username, s.admin_realm, s.admin_client_id,
      ], p.migrations.resources, ['database'], direct=true)
      + k.container.withVolumeMounts(a.standaloneMounts + [a.authSecretsMount]);
    local podSpec = pod(names.keycloakSetup, 'keycloak-setup', container,
                        a.standaloneVolumes + [a.secretsVolume(container.secretNeeds), a.authSecretsVolume('keycloak-setup')]);
    [
      a.serviceAccount(names.keycloakSetup, 'keycloak-setup'),
      job(names.keycloakSetup, 'keycloak-setup', podSpec, std.manifestJsonMinified(p.auth.keycloak) + a.authSecretsChecksum('keycloak-setup')),
    ]
  else [];

k.files([fabConfig, refSecret] + usersObjects + keycloakObjects)
