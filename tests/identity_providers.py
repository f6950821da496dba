"""Real identity providers for the sign-in tests: an OpenLDAP server (Debian's slapd) and an OpenID
Connect provider (oidc-provider-mock, a real OAuth 2.0 / OIDC server with a one-field login form).

Each runs in a process group of its own (conftest.running) and is stopped with it when its `with`
block ends, also when the block fails; a server that dies or never answers fails with its log.
Both listen on 127.0.0.1 only, on a free port.

    with openldap([LdapUser("alice", "alice-pw")], {"airflow-admins": ["alice"]}) as ldap:
        ldap.url, ldap.ca_file, ldap.bind_dn, ldap.bind_password, ldap.user_dns["alice"]

    with oidc_provider({"alice": {"email": "alice@example.org", "groups": ["airflow-admins"]}}) as idp:
        idp.discovery_url, idp.issuer, idp.set_claims("bob", {"groups": []})
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port, running

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SLAPTEST = Path("/usr/sbin/slaptest")
LDAP_MODULES = Path("/usr/lib/ldap")
LDAP_SCHEMAS = Path("/etc/ldap/schema")
# Debian packages that provide what this module runs (`make test-packages` installs them).
PACKAGES = {"slapd": "slapd", "slapadd": "slapd", "slaptest": "slapd", "ldapwhoami": "ldap-utils",
            "ldapadd": "ldap-utils", "ldapsearch": "ldap-utils", "openssl": "openssl"}
START_TIMEOUT = 30.0


def _tool(name: str, path: Path | None = None) -> str:
    """The path of a program this module needs, or a failure naming the Debian package to install."""
    found = str(path) if path and path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: install the Debian package {PACKAGES.get(name, name)} "
                           "(`make test-packages` installs what the tests need)")
    return found


def _wait_until(what: str, ready: Callable[[], bool], process: subprocess.Popen, log: Path,
                timeout: float = START_TIMEOUT) -> None:
    """Polls `ready` until it holds; a failure with the server's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before it answered:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


# --- OpenLDAP ------------------------------------------------------------------------------------

BASE_DN = "dc=example,dc=org"


@dataclass(frozen=True)
class LdapUser:
    """A person of the directory (an inetOrgPerson under ou=people, named uid=<uid>)."""

    uid: str
    password: str
    given_name: str = ""  # default: the uid, capitalised
    surname: str = "Tester"
    mail: str = ""  # default: <uid>@example.org

    @property
    def first_name(self) -> str:
        return self.given_name or self.uid.capitalize()

    @property
    def email(self) -> str:
        return self.mail or f"{self.uid}@example.org"


@dataclass(frozen=True)
class LdapDirectory:
    """A running slapd: where it listens and what it holds. `url` is plain LDAP on which StartTLS
    is offered (and, with require_tls, required before any bind); `ldaps_url` is LDAP over TLS.
    Both present a certificate for 127.0.0.1 and localhost signed by the CA in `ca_file`. Give
    OpenLDAP clients (python-ldap too) the 127.0.0.1 address: for a URL naming `localhost`, libldap
    checks the certificate against the reverse-DNS name of the address it connected to (this
    machine's hostname), which the certificate does not carry."""

    url: str
    ldaps_url: str
    ca_file: Path
    base_dn: str
    people_dn: str
    groups_dn: str
    # The application's read-only service account (reads the directory, never writes).
    bind_dn: str
    bind_password: str
    # The directory's rootdn: everything is allowed to it.
    admin_dn: str
    admin_password: str
    user_dns: dict[str, str]   # uid -> DN
    group_dns: dict[str, str]  # cn -> DN
    log: Path  # slapd's (-d stats), for a failing test to show

    def client_env(self) -> dict[str, str]:
        """Environment for the OpenLDAP clients (ldapsearch, ldapwhoami, python-ldap) to verify the
        server's certificate against this directory's CA."""
        return {**os.environ, "LDAPTLS_CACERT": str(self.ca_file), "LDAPTLS_REQCERT": "demand"}

    def whoami(self, dn: str, password: str) -> subprocess.CompletedProcess[str]:
        """`ldapwhoami` bound as `dn` over StartTLS (-ZZ: fails unless TLS is established)."""
        return subprocess.run([_tool("ldapwhoami"), "-x", "-ZZ", "-H", self.url, "-D", dn, "-w", password],
                              env=self.client_env(), capture_output=True, text=True, timeout=30)

    def search(self, base: str, filter: str, *attributes: str, dn: str | None = None,
               password: str | None = None) -> subprocess.CompletedProcess[str]:
        """`ldapsearch` over StartTLS, bound as `dn` (default: the service account), LDIF output."""
        return subprocess.run(
            [_tool("ldapsearch"), "-x", "-ZZ", "-LLL", "-H", self.url, "-D", dn or self.bind_dn,
             "-w", password if password is not None else self.bind_password, "-b", base, filter, *attributes],
            env=self.client_env(), capture_output=True, text=True, timeout=30)


def ssha(password: str) -> str:
    """A salted SHA-1 userPassword value, the scheme slapd checks without any module."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def make_tls_files(directory: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signs for `names` (IP addresses or DNS names),
    made with the openssl CLI: (ca.crt, server.crt, server.key). Valid for two days."""
    openssl = _tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, request, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    san = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in names)
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
         "-subj", "/CN=airflow-gitops test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", key, "-out", request, "-subj", f"/CN={names[0]}"],
        [openssl, "x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-out", cert, "-extfile", extensions],
    ]
    for step in steps:
        result = subprocess.run([str(a) for a in step], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"openssl failed: {' '.join(map(str, step[:3]))}...\n{result.stderr}")
    return ca_cert, cert, key


def _slapd_config(work: Path, ca: Path, cert: Path, key: Path, admin_dn: str, admin_password: str,
                  bind_dn: str, require_tls: bool) -> str:
    """cn=config as LDIF: the mdb database of BASE_DN, TLS, the memberof overlay and the access rules
    (passwords only for binding; the service account and each user read, nobody else anything)."""
    security = "olcSecurity: tls=1\n" if require_tls else ""
    schemas = "".join(f"include: file://{LDAP_SCHEMAS}/{name}.ldif\n\n" for name in ("core", "cosine", "inetorgperson"))
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {work}/slapd.pid
olcArgsFile: {work}/slapd.args
olcTLSCACertificateFile: {ca}
olcTLSCertificateFile: {cert}
olcTLSCertificateKeyFile: {key}
{security}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {LDAP_MODULES}
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {work}/data
olcSuffix: {BASE_DN}
olcRootDN: {admin_dn}
olcRootPW: {ssha(admin_password)}
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to * by dn.exact="{bind_dn}" read by self read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
"""


def _entries(directory: LdapDirectory, users: list[LdapUser], groups: Mapping[str, list[str]]) -> str:
    """The directory's entries as LDIF, groups last: the memberof overlay writes memberOf into each
    member as its group is added, which needs the members to exist."""
    people, groups_dn = directory.people_dn, directory.groups_dn
    blocks = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        *(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {dn.split(',')[0][3:]}\n"
          for dn in (people, groups_dn, f"ou=services,{BASE_DN}")),
        f"dn: {directory.bind_dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: airflow-bind\ndescription: read-only service account of the application\n"
        f"userPassword: {ssha(directory.bind_password)}\n",
    ]
    for user in users:
        blocks.append(f"dn: {directory.user_dns[user.uid]}\nobjectClass: inetOrgPerson\nuid: {user.uid}\n"
                      f"cn: {user.first_name} {user.surname}\nsn: {user.surname}\ngivenName: {user.first_name}\n"
                      f"mail: {user.email}\nuserPassword: {ssha(user.password)}\n")
    for name, members in groups.items():
        blocks.append(f"dn: {directory.group_dns[name]}\nobjectClass: groupOfNames\ncn: {name}\n"
                      + "".join(f"member: {directory.user_dns[uid]}\n" for uid in members))
    return "\n".join(blocks)


def _check_groups(users: list[LdapUser], groups: Mapping[str, list[str]]) -> None:
    uids = {u.uid for u in users}
    if len(uids) != len(users):
        raise ValueError("two LDAP users share a uid")
    for name, members in groups.items():
        if not members:
            raise ValueError(f"LDAP group {name!r} has no member: groupOfNames needs at least one")
        unknown = sorted(set(members) - uids)
        if unknown:
            raise ValueError(f"LDAP group {name!r} names users that are not in the directory: {unknown}")


@contextmanager
def openldap(users: Iterable[LdapUser], groups: Mapping[str, Iterable[str]] | None = None, *,
             require_tls: bool = True) -> Iterator[LdapDirectory]:
    """A real slapd serving BASE_DN on 127.0.0.1, stopped (and its files removed) when the block ends.

    Its own cn=config (made with slapadd, checked with slaptest) in a temporary directory: an mdb
    database, StartTLS and LDAPS with a throwaway CA, the memberof overlay (each user gets
    `memberOf: <group DN>` for every groupOfNames listing it), people under ou=people, groups under
    ou=groups and the read-only service account cn=airflow-bind,ou=services. Anonymous clients can
    only bind; with `require_tls` (the default) a bind or search without TLS is refused
    ("confidentiality required"), so a client that forgets StartTLS fails here as it should.

    slapd runs in the foreground (`-d`), so stopping its process group stops it; its log (`-d
    stats`: connections, binds, searches and their results) is `directory.log`.
    """
    users = list(users)
    groups = {name: list(members) for name, members in (groups or {}).items()}
    _check_groups(users, groups)
    slapd, slapadd, slaptest = _tool("slapd", SLAPD), _tool("slapadd", SLAPADD), _tool("slaptest", SLAPTEST)
    ldapadd = _tool("ldapadd")
    work = Path(tempfile.mkdtemp(prefix="airflow-gitops-slapd-"))
    try:
        ca, cert, key = make_tls_files(work / "tls")
        port, tls_port = free_port(), free_port()
        people, groups_dn = f"ou=people,{BASE_DN}", f"ou=groups,{BASE_DN}"
        directory = LdapDirectory(
            url=f"ldap://127.0.0.1:{port}", ldaps_url=f"ldaps://127.0.0.1:{tls_port}", ca_file=ca,
            base_dn=BASE_DN, people_dn=people, groups_dn=groups_dn,
            bind_dn=f"cn=airflow-bind,ou=services,{BASE_DN}", bind_password=secrets.token_urlsafe(18),
            admin_dn=f"cn=admin,{BASE_DN}", admin_password=secrets.token_urlsafe(18),
            user_dns={u.uid: f"uid={u.uid},{people}" for u in users},
            group_dns={name: f"cn={name},{groups_dn}" for name in groups},
            log=work / "slapd.log",
        )
        config = work / "slapd.d"
        for path in (config, work / "data"):
            path.mkdir()
        (work / "slapd.ldif").write_text(_slapd_config(work, ca, cert, key, directory.admin_dn,
                                                       directory.admin_password, directory.bind_dn, require_tls))
        for step in ([slapadd, "-n", "0", "-F", str(config), "-l", str(work / "slapd.ldif")],
                     [slaptest, "-F", str(config), "-u"]):
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{Path(step[0]).name} refused the generated slapd configuration:\n"
                                   f"{result.stdout}{result.stderr}")
        with open(directory.log, "w") as log, running(
                [slapd, "-d", "stats", "-F", str(config), "-h", f"{directory.url}/ {directory.ldaps_url}/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) as process:
            _wait_until(f"slapd on {directory.url}",
                        lambda: directory.whoami(directory.admin_dn, directory.admin_password).returncode == 0,
                        process, directory.log)
            added = subprocess.run([ldapadd, "-x", "-ZZ", "-H", directory.url, "-D", directory.admin_dn,
                                    "-w", directory.admin_password],
                                   input=_entries(directory, users, groups), env=directory.client_env(),
                                   capture_output=True, text=True, timeout=60)
            if added.returncode != 0:
                raise RuntimeError(f"ldapadd could not load the directory:\n{added.stderr}\n{_tail(directory.log)}")
            yield directory
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- OpenID Connect ------------------------------------------------------------------------------

OIDC_PROVIDER = Path(sys.executable).with_name("oidc-provider-mock")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Leaves a redirect to the caller (an HTTPError carrying the Location) instead of following it."""

    def redirect_request(self, *args, **kwargs):
        return None


@dataclass(frozen=True)
class OidcProvider:
    """A running oidc-provider-mock (a Flask/Authlib OpenID provider for tests).

    Any client_id and client_secret is accepted (no registration), any redirect_uri too. Its
    endpoints (from the discovery document): /oauth2/authorize, /oauth2/token, /userinfo, /jwks,
    /oauth2/end_session. The ID token and userinfo carry the user's claims: the standard ones
    (email, name...) when their scope is asked for, any other claim (such as `groups`) always.

    A browser-style login, as a test drives it with urllib (no JavaScript involved):
      1. GET  {authorization_endpoint}?client_id=..&redirect_uri=..&response_type=code&scope=openid
              email profile&state=..[&nonce=..]  ->  200, an HTML form (the "login page");
      2. POST the form to that same URL (query string included), body `sub=<user>` as
              application/x-www-form-urlencoded  ->  302 to redirect_uri?code=..&state=..;
              (`action=deny` instead answers with error=access_denied);
      3. the client POSTs grant_type=authorization_code, code, redirect_uri (client credentials by
              HTTP Basic or in the body) to {token_endpoint}  ->  access_token, id_token (RS256,
              signed by a key in /jwks), refresh_token.
    login() does steps 1 and 2. A `sub` never seen before is accepted and gets {"email": sub};
    set_claims gives it other claims.
    """

    issuer: str
    log: Path

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/token"

    def discovery(self) -> dict:
        with urllib.request.urlopen(self.discovery_url, timeout=10) as response:
            return json.loads(response.read())

    def login(self, authorization_url: str, sub: str) -> str:
        """What a browser does on the provider's login page: GET `authorization_url` (the address a
        client redirected the browser to), submit the form as `sub`; the Location the provider
        redirects to (the client's redirect_uri with `code` and `state`, or with `error`)."""
        with urllib.request.urlopen(authorization_url, timeout=10) as page:
            if page.status != 200 or b'name="sub"' not in page.read():
                raise RuntimeError(f"{authorization_url} did not answer with the login form")
        form = urllib.request.Request(authorization_url, data=urllib.parse.urlencode({"sub": sub}).encode(),
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.build_opener(_NoRedirect).open(form, timeout=10) as response:
                raise RuntimeError(f"the login form for {sub!r} answered {response.status}, not a redirect:\n"
                                   f"{response.read().decode(errors='replace')[-1000:]}")
        except urllib.error.HTTPError as redirect:
            if redirect.code not in (302, 303):
                raise RuntimeError(f"the login form for {sub!r} answered {redirect.code}:\n"
                                   f"{redirect.read().decode(errors='replace')[-1000:]}") from None
            return redirect.headers["Location"]

    def set_claims(self, sub: str, claims: Mapping[str, object]) -> None:
        """Makes `sub` a user with exactly these claims (PUT /users/<sub>), for tokens issued from now."""
        request = urllib.request.Request(f"{self.issuer}/users/{urllib.request.quote(sub, safe='')}",
                                         data=json.dumps(dict(claims)).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 204:
                    raise RuntimeError(f"PUT /users/{sub}: unexpected status {response.status}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"PUT /users/{sub} refused ({error.code}): {error.read().decode(errors='replace')}") from error


@contextmanager
def oidc_provider(users: Mapping[str, Mapping[str, object]] | None = None, *,
                  token_max_age: int = 3600) -> Iterator[OidcProvider]:
    """oidc-provider-mock on 127.0.0.1 (a free port), with `users` ({sub: claims}) defined up front,
    stopped when the block ends. The issuer is http://127.0.0.1:<port>: the provider names itself
    after the Host header it is asked with, so clients must use that address (not localhost) for
    the `iss` of its tokens to match."""
    if not OIDC_PROVIDER.exists():
        raise RuntimeError(f"{OIDC_PROVIDER} is missing: install the test dependencies (`make venv`: "
                           "pip install -e '.[test]')")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="airflow-gitops-oidc-"))
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}", log=work / "oidc-provider.log")
    args = [str(OIDC_PROVIDER), "--host", "127.0.0.1", "--port", str(port), "--token-max-age", str(token_max_age)]
    for sub, claims in (users or {}).items():
        args += ["--user-claims", json.dumps({**claims, "sub": sub})]

    def answers() -> bool:
        try:
            return provider.discovery().get("issuer") == provider.issuer
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            return False

    try:
        with open(provider.log, "w") as log, running(args, stdout=log, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"}) as process:
            _wait_until(f"oidc-provider-mock on {provider.issuer}", answers, process, provider.log)
            yield provider
    finally:
        shutil.rmtree(work, ignore_errors=True)
