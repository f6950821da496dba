"""Local stand-ins for the non-Airflow images our manifests run, for `airflow-gitops up`.

No container registry is reachable here, so each image a compiled pod names is replaced by a
program of this machine that does what the image's entrypoint does *for the containers our
manifests declare*. Each function below returns the command line the sandbox (bubblewrap: a
read-only root, only the container's declared volumes) runs in place of the image:

- postgres:16.4 -> `postgres_command`: the official image's docker-entrypoint.sh, ported to bash
  and run with Debian's **PostgreSQL 15** binaries (/usr/lib/postgresql/15/bin), see its docstring.
- redis:7.4.2-bookworm -> `redis_command`: Debian's redis-server (**Redis 7.0**) with the
  container's own command and arguments.
- registry.k8s.io/git-sync/git-sync:v4.4.2 -> `git_sync_command`: an emulation of git-sync v4 in
  Python (`git` on PATH), syncing from a local repository standing in for the remote.
- apache/airflow -> not here: tests/compiled_pod.py runs it from a virtualenv.

`image_kind` tells which stand-in an image reference needs (None: no stand-in, the caller refuses
the pod), `image_defaults` what the real image gives a container that the pod spec leaves unset
(user, working directory, environment, its /etc/passwd entry, stop signal).

What the caller does, not these functions: $(VAR) expansion of command/args/env (the container
passed in is taken as already expanded), lifecycle hooks (the postgres pod's postStart
`sh /scripts/set-password.sh` runs beside the server, as the kubelet runs it), probes, volumes.

    kind = image_kind(container["image"])                 # "postgres"
    defaults = image_defaults(kind)
    env = {**defaults.env, **container_env}               # the container's env over the image's
    argv = standin_command(kind, container, env, repositories={
        "git@github.com:example/airflow-dags.git": "/srv/dags.git"})
    # bwrap ... --uid 999 --setenv ... -- *argv ; stop it with defaults.stop_signal
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from airflow_gitops.errors import AirflowGitopsError

__all__ = [
    "GIT_SYNC_SCRIPT", "ImageDefaults", "POSTGRES_BIN", "POSTGRES_ENTRYPOINT", "REDIS_BIN", "STANDIN_KINDS",
    "StandinError", "git_sync_command", "image_defaults", "image_kind", "postgres_command", "redis_command",
    "standin_command",
]


class StandinError(AirflowGitopsError):
    """A container cannot run on its image's local stand-in as declared (the message says why)."""


# --- Which stand-in an image needs -----------------------------------------------------------------

# Debian's PostgreSQL and Redis (apt-get install postgresql-15 redis-server).
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_BIN = Path("/usr/bin")
# The kinds this module has a command for ("airflow" runs from tests/compiled_pod.py's virtualenv).
STANDIN_KINDS = frozenset({"postgres", "redis", "git-sync"})

# repository (Docker Hub's library/ and docker.io/ prefixes removed) -> kind
_REPOSITORY_KINDS = {
    "postgres": "postgres",
    "redis": "redis",
    "registry.k8s.io/git-sync/git-sync": "git-sync",
    "k8s.gcr.io/git-sync/git-sync": "git-sync",
    "gcr.io/k8s-staging-git-sync/git-sync": "git-sync",
    "quay.io/prometheus/statsd-exporter": "statsd-exporter",
    "prom/statsd-exporter": "statsd-exporter",
    "apache/airflow": "airflow",
}
# apache/airflow also publishes the chart's PgBouncer images, told apart by their tags (ours:
# airflow-pgbouncer-2025.03.05-1.23.1, database.pgbouncer.image).
_AIRFLOW_TAG_KINDS = (("airflow-pgbouncer-exporter-", "pgbouncer-exporter"), ("airflow-pgbouncer-", "pgbouncer"))


def _split_reference(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference: the digest dropped, Docker Hub's implicit
    `docker.io/` and `library/` prefixes removed (so `docker.io/library/postgres` is `postgres`)."""
    name = image.strip().split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    repository, tag = (name[:colon], name[colon + 1:]) if colon > slash else (name, "latest")
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix):]
            break
    if repository.startswith("library/"):
        repository = repository[len("library/"):]
    return repository.lower(), tag


def image_kind(image: str) -> str | None:
    """The stand-in an image reference needs: "postgres", "redis", "git-sync", "airflow",
    "pgbouncer", "pgbouncer-exporter" or "statsd-exporter"; None for an image we have no stand-in
    for (a custom Airflow image under another name included), which the caller refuses by name."""
    repository, tag = _split_reference(image)
    kind = _REPOSITORY_KINDS.get(repository)
    if kind == "airflow":
        for prefix, tagged_kind in _AIRFLOW_TAG_KINDS:
            if tag.startswith(prefix):
                return tagged_kind
    return kind


# --- What an image gives a container the pod spec leaves unset -------------------------------------

_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageDefaults:
    """The real image's USER, WORKDIR, ENV, /etc/passwd entry and STOPSIGNAL, as the stand-in needs
    them: a sandbox running the stand-in gives the container these where its spec sets nothing."""
    user: tuple[int, int]
    workdir: str
    env: Mapping[str, str]
    # The image's line for its own user: initdb refuses a uid it cannot look up, and our manifests
    # run PostgreSQL as 999, which this machine's /etc/passwd lacks.
    passwd: str
    stop_signal: signal.Signals = signal.SIGTERM
    notes: tuple[str, ...] = field(default=())


_IMAGE_DEFAULTS = {
    # postgres:16 (Debian bookworm): no USER (root, the entrypoint steps down to postgres with
    # gosu; the stand-in refuses root instead), STOPSIGNAL SIGINT (fast shutdown: SIGTERM is
    # PostgreSQL's "smart" one, waiting for every client to disconnect).
    "postgres": ImageDefaults(
        user=(0, 0), workdir="/",
        env=MappingProxyType({
            # The image appends its bin directory; the stand-in's comes first so that psql and
            # pg_isready (the probes, the postStart hook) are 15's, not Debian's pg_wrapper.
            "PATH": f"{POSTGRES_BIN}:{_BASE_PATH}",
            "PG_MAJOR": "15",
            "PGDATA": "/var/lib/postgresql/data",
            # The image's is en_US.utf8, a locale this machine does not generate: initdb would
            # fail. Databases created here collate as C.UTF-8.
            "LANG": "C.UTF-8",
        }),
        passwd="postgres:x:999:999::/var/lib/postgresql:/bin/bash",
        stop_signal=signal.SIGINT,
        notes=("PostgreSQL 15 (Debian) stands in for the image's 16.4",),
    ),
    # redis:7.4 (Debian bookworm): no USER (root, the entrypoint steps down to redis with gosu),
    # WORKDIR /data.
    "redis": ImageDefaults(
        user=(0, 0), workdir="/data",
        env=MappingProxyType({"PATH": _BASE_PATH}),
        passwd="redis:x:999:999::/home/redis:/usr/sbin/nologin",
        notes=("Redis 7.0 (Debian) stands in for the image's 7.4.2",),
    ),
    # git-sync v4 (Dockerfile.in): USER 65533:65533, HOME=/tmp, WORKDIR /tmp, GITSYNC_ROOT=/git.
    "git-sync": ImageDefaults(
        user=(65533, 65533), workdir="/tmp",
        env=MappingProxyType({"PATH": _BASE_PATH, "HOME": "/tmp", "GITSYNC_ROOT": "/git"}),
        passwd="git-sync:x:65533:65533::/tmp:/sbin/nologin",
        notes=("an emulation of git-sync v4 (see git_sync_command)",),
    ),
}


def image_defaults(kind: str) -> ImageDefaults:
    """What the real image of `kind` gives a container whose spec leaves it unset (see ImageDefaults)."""
    try:
        return _IMAGE_DEFAULTS[kind]
    except KeyError:
        raise StandinError(_no_standin(kind)) from None


def _no_standin(kind: str | None) -> str:
    if kind == "airflow":
        return "apache/airflow images run from a virtualenv (tests/compiled_pod.py), not from this module"
    have = ", ".join(sorted(STANDIN_KINDS))
    return f"no local stand-in for {kind or 'this'} images (stand-ins exist for {have})"


def standin_command(kind: str, container: Mapping[str, Any], env: Mapping[str, str],
                    repositories: Mapping[str, str] | None = None) -> list[str]:
    """The stand-in command of `container` for an image of `kind` (image_kind), or StandinError
    naming the container when there is none."""
    name = container.get("name", "?")
    if kind == "postgres":
        return postgres_command(container, env)
    if kind == "redis":
        return redis_command(container, env)
    if kind == "git-sync":
        return git_sync_command(container, env, repositories or {})
    raise StandinError(f"container {name} (image {container.get('image', '?')}): {_no_standin(kind)}")


def _command_and_args(container: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The container's `command` (replaces the image's ENTRYPOINT) and `args` (its CMD)."""
    return [str(a) for a in container.get("command") or []], [str(a) for a in container.get("args") or []]


# --- PostgreSQL ----------------------------------------------------------------------------------

# docker-library/postgres 16/bookworm/docker-entrypoint.sh as of 16.4 (MIT licence), ported:
# Debian's binaries by absolute path ($PG_BIN), the socket directory and the init-scripts directory
# as parameters (so that it also runs outside a sandbox), root refused instead of `gosu postgres`,
# and the image's postgresql.conf.sample edit (listen_addresses = '*') applied to the new
# postgresql.conf. The PG 12/13-only password-length warning is left out.
POSTGRES_ENTRYPOINT = r'''
set -Eeo pipefail

die() { printf 'postgres stand-in: %s\n' "$*" >&2; exit 1; }

# Where the server's socket is: the image's default (PostgreSQL's compiled-in one) needs no -c.
SOCKET_ARGS=()
if [ "$SOCKET_DIR" != /var/run/postgresql ]; then
    SOCKET_ARGS=(-c "unix_socket_directories=$SOCKET_DIR")
fi

# usage: file_env VAR [DEFAULT]: "$VAR_FILE" fills in "$VAR" from a file (Docker's secrets).
file_env() {
    local var="$1"
    local fileVar="${var}_FILE"
    local def="${2:-}"
    if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
        printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
        exit 1
    fi
    local val="$def"
    if [ "${!var:-}" ]; then
        val="${!var}"
    elif [ "${!fileVar:-}" ]; then
        val="$(< "${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

docker_create_db_directories() {
    mkdir -p "$PGDATA"
    # ignore failure: PostgreSQL checks this directory's permissions itself
    chmod 00700 "$PGDATA" || :
    mkdir -p "$SOCKET_DIR" || :
    chmod 03775 "$SOCKET_DIR" || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi
}

docker_init_database_dir() {
    # initdb needs the current uid in /etc/passwd: the image fakes it with nss_wrapper if it must.
    local uid; uid="$(id -u)"
    if ! getent passwd "$uid" &> /dev/null; then
        local wrapper found=
        for wrapper in {/usr,}/lib{/*,}/libnss_wrapper.so; do
            if [ -s "$wrapper" ]; then
                NSS_WRAPPER_PASSWD="$(mktemp)"
                NSS_WRAPPER_GROUP="$(mktemp)"
                export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
                local gid; gid="$(id -g)"
                printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$uid" "$gid" "$PGDATA" > "$NSS_WRAPPER_PASSWD"
                printf 'postgres:x:%s:\n' "$gid" > "$NSS_WRAPPER_GROUP"
                found=1
                break
            fi
        done
        [ -n "$found" ] || die "uid $uid has no /etc/passwd entry, which initdb needs: give the sandbox the image's" \
            "(image_defaults('postgres').passwd) or install libnss-wrapper"
    fi

    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
    fi

    # --pwfile refuses a properly-empty file (hence the "\n")
    eval '"$PG_BIN/initdb" --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'

    # The image's Dockerfile makes its postgresql.conf.sample listen on every address:
    sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$PGDATA/postgresql.conf"
    grep -qF "listen_addresses = '*'" "$PGDATA/postgresql.conf" || die "could not set listen_addresses in $PGDATA/postgresql.conf"

    if [[ "${LD_PRELOAD:-}" == */libnss_wrapper.so ]]; then
        rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
        unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
    fi
}

docker_verify_minimum_env() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
        cat >&2 <<'EOE'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.

       See PostgreSQL documentation about "trust":
       https://www.postgresql.org/docs/current/auth-trust.html
EOE
        exit 1
    fi
    if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
        cat >&2 <<'EOWARN'
********************************************************************************
WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
         anyone with access to the Postgres port to access your database without
         a password, even if POSTGRES_PASSWORD is set.
********************************************************************************
EOWARN
    fi
}

# usage: docker_process_init_files [file [file [...]]]: by extension and permissions
docker_process_init_files() {
    # psql here for backwards compatibility "${psql[@]}"
    psql=( docker_process_sql )

    printf '\n'
    local f
    for f; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    printf '%s: running %s\n' "$0" "$f"
                    "$f"
                else
                    printf '%s: sourcing %s\n' "$0" "$f"
                    . "$f"
                fi
                ;;
            *.sql)     printf '%s: running %s\n' "$0" "$f"; docker_process_sql -f "$f"; printf '\n' ;;
            *.sql.gz)  printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | docker_process_sql; printf '\n' ;;
            *.sql.xz)  printf '%s: running %s\n' "$0" "$f"; xzcat "$f" | docker_process_sql; printf '\n' ;;
            *.sql.zst) printf '%s: running %s\n' "$0" "$f"; zstd -dc "$f" | docker_process_sql; printf '\n' ;;
            *)         printf '%s: ignoring %s\n' "$0" "$f" ;;
        esac
        printf '\n'
    done
}

# usage: docker_process_sql [psql-cli-args]: SQL on stdin or -f, over the temporary server's socket
docker_process_sql() {
    local query_runner=( "$PG_BIN/psql" -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc )
    if [ -n "$POSTGRES_DB" ]; then
        query_runner+=( --dbname "$POSTGRES_DB" )
    fi

    PGHOST="$SOCKET_DIR" PGHOSTADDR= "${query_runner[@]}" "$@"
}

docker_setup_db() {
    local dbAlreadyExists
    dbAlreadyExists="$(
        POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<'EOSQL'
SELECT 1 FROM pg_database WHERE datname = :'db' ;
EOSQL
    )"
    if [ -z "$dbAlreadyExists" ]; then
        POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<'EOSQL'
CREATE DATABASE :"db" ;
EOSQL
        printf '\n'
    fi
}

docker_setup_env() {
    : "${PGDATA:=/var/lib/postgresql/data}"
    export PGDATA
    file_env 'POSTGRES_PASSWORD'

    file_env 'POSTGRES_USER' 'postgres'
    file_env 'POSTGRES_DB' "$POSTGRES_USER"
    file_env 'POSTGRES_INITDB_ARGS'
    : "${POSTGRES_HOST_AUTH_METHOD:=}"

    declare -g DATABASE_ALREADY_EXISTS
    : "${DATABASE_ALREADY_EXISTS:=}"
    # look specifically for PG_VERSION, as it is expected in the DB dir
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS='true'
    fi
}

# "host all all all <method>": POSTGRES_HOST_AUTH_METHOD, by default the server's password_encryption
pg_setup_hba_conf() {
    if [ "$1" = 'postgres' ]; then
        shift
    fi
    local auth
    auth="$("$PG_BIN/postgres" -C password_encryption "$@")"
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    {
        printf '\n'
        if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
            printf '# warning trust is enabled for all connections\n'
        fi
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"
}

# A socket-only server for the setup: no TCP, so clients wait for the real one.
docker_temp_server_start() {
    if [ "$1" = 'postgres' ]; then
        shift
    fi
    set -- "${SOCKET_ARGS[@]}" "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
    NOTIFY_SOCKET= \
    PGUSER="${PGUSER:-$POSTGRES_USER}" \
    "$PG_BIN/pg_ctl" -D "$PGDATA" \
        -o "$(printf '%q ' "$@")" \
        -w start
}

docker_temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" \
    "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop
}

# an option that makes postgres print something and stop
_pg_want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version)
                return 0
                ;;
        esac
    done
    return 1
}

_main() {
    # if first arg looks like a flag, assume we want to run postgres server
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = 'postgres' ] && ! _pg_want_help "$@"; then
        docker_setup_env
        if [ "$(id -u)" = '0' ]; then
            die "running as root: the image steps down to its postgres user (gosu), the stand-in does not;" \
                "run the container as a non-root uid (our manifests set runAsUser 999)"
        fi
        docker_create_db_directories

        # only run initialization on an empty data directory
        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            docker_verify_minimum_env

            # check dir permissions to reduce likelihood of half-initialized database
            if [ -e "$INITDB_DIR" ]; then
                ls "$INITDB_DIR"/ > /dev/null
            fi

            docker_init_database_dir
            pg_setup_hba_conf "$@"

            # PGPASSWORD is required for psql when authentication is required for 'local' connections
            export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
            docker_temp_server_start "$@"

            docker_setup_db
            if [ -d "$INITDB_DIR" ]; then
                docker_process_init_files "$INITDB_DIR"/*
            fi

            docker_temp_server_stop
            unset PGPASSWORD

            printf '\nPostgreSQL init process complete; ready for start up.\n\n'
        else
            printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
        fi
    fi

    if [ "$1" = 'postgres' ]; then
        shift
        set -- "$PG_BIN/postgres" "${SOCKET_ARGS[@]}" "$@"
    fi
    exec "$@"
}

_main "$@"
'''


def postgres_command(container: Mapping[str, Any], env: Mapping[str, str], *,
                     socket_dir: str = "/var/run/postgresql", initdb_dir: str = "/docker-entrypoint-initdb.d",
                     bin_dir: Path = POSTGRES_BIN) -> list[str]:
    """The command line that does for `container` what the postgres image does.

    **Version: the image is postgres:16.4, the stand-in is Debian's PostgreSQL 15** (bin_dir). A
    data directory made by one cannot be opened by the other; Airflow 3.3.2 supports both, and
    nothing our manifests run depends on 16 (the postStart hook's ALTER ROLE, pg_isready, initdb's
    scram-sha-256 default are all in 15).

    Without a `command` (ours has none) the container's `args` (default: `postgres`) go through
    the image's docker-entrypoint.sh, ported to bash (POSTGRES_ENTRYPOINT): when PGDATA (env,
    default /var/lib/postgresql/data; ours /var/lib/postgresql/data/pgdata, inside the `data`
    volume) holds no PG_VERSION it runs initdb as POSTGRES_USER (default postgres) with the
    password of POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (ours: the `password` secret volume),
    appends `host all all all <POSTGRES_HOST_AUTH_METHOD>` (default the server's
    password_encryption: scram-sha-256) to pg_hba.conf, sets listen_addresses = '*' in
    postgresql.conf (the image's sample has it), starts a socket-only server, creates POSTGRES_DB,
    runs the files of `initdb_dir` (*.sh, *.sql, *.sql.gz/xz/zst; our manifest mounts none there,
    and a missing directory is skipped) and stops it; a data directory that has PG_VERSION is left
    as it is. Then it execs postgres with the container's args (after a leading `postgres`), so
    `-c name=value` settings override postgresql.conf. Other args (`psql ...`) are exec'd as the
    image would. A `command` replaces the entrypoint, as in Kubernetes: it runs as given.

    The socket: /var/run/postgresql, where the manifest mounts the `run` emptyDir (the postStart
    hook connects there as the server's own user); pass `socket_dir` to put it elsewhere outside a
    sandbox (then `-c unix_socket_directories` is added). The server needs writes only there and in
    PGDATA: the read-only root is fine.

    Differences from the image: PostgreSQL 15, not 16.4; locale C.UTF-8 (image_defaults), not
    en_US.utf8; as root it stops with a message instead of stepping down to uid 999 with gosu
    (our manifests run as 999, which needs image_defaults('postgres').passwd in the sandbox's
    /etc/passwd unless libnss-wrapper is installed); the image's STOPSIGNAL is SIGINT
    (image_defaults().stop_signal), which the caller must send to stop it as Kubernetes does.
    Lifecycle hooks (our postStart set-password.sh) are the caller's to run.

    `env` is the environment the sandbox gives the container (image_defaults('postgres').env,
    then the container's): the entrypoint reads it when it runs; here it is only checked for what
    the image would refuse.
    """
    password, password_file = env.get("POSTGRES_PASSWORD"), env.get("POSTGRES_PASSWORD_FILE")
    if password and password_file:
        raise StandinError(f"container {container.get('name', '?')}: both POSTGRES_PASSWORD and "
                           "POSTGRES_PASSWORD_FILE are set, which the postgres image refuses (they are exclusive)")
    if not (bin_dir / "postgres").exists():
        raise StandinError(f"PostgreSQL is not installed at {bin_dir}: apt-get install postgresql-15")
    command, args = _command_and_args(container)
    if command:  # replaces the image's entrypoint
        return [*command, *args]
    script = "\n".join([f"PG_BIN={shlex.quote(str(bin_dir))}", f"SOCKET_DIR={shlex.quote(socket_dir)}",
                        f"INITDB_DIR={shlex.quote(initdb_dir)}", POSTGRES_ENTRYPOINT])
    return ["/bin/bash", "-c", script, "docker-entrypoint.sh", *(args or ["postgres"])]


# --- Redis ---------------------------------------------------------------------------------------

_REDIS_PROGRAMS = ("redis-server", "redis-cli", "redis-sentinel", "redis-benchmark", "redis-check-aof", "redis-check-rdb")

# The redis image's docker-entrypoint.sh, as used when a container sets no `command`; root is
# refused instead of stepping down to the redis user with gosu.
REDIS_ENTRYPOINT = r'''
set -e
if [ "${1##*/}" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    echo "redis stand-in: running as root: the image steps down to its redis user (gosu), the stand-in" \
         "does not; run the container as a non-root uid (our manifests set runAsUser 999)" >&2
    exit 1
fi
# an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
    umask 0077
fi
exec "$@"
'''


def _redis_program(argv: list[str]) -> list[str]:
    """argv with a Redis program named by its absolute path on this machine."""
    if argv and argv[0] in _REDIS_PROGRAMS:
        path = REDIS_BIN / argv[0]
        if not path.exists():
            raise StandinError(f"{argv[0]} is not installed here: apt-get install redis-server "
                               "(Debian's Redis 7.0 stands in for the redis:7.4 image)")
        return [str(path), *argv[1:]]
    return argv


def redis_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The command line that does for `container` what the redis image does.

    **Version: the image is redis:7.4.2-bookworm, the stand-in Debian's redis-server 7.0**; our
    redis.conf (bind 0.0.0.0 -::*, appendonly, maxmemory-policy noeviction, include) means the same
    to both, and 7.0 reads 7.4's data files only if no 7.2+ feature wrote them.

    Our Redis container sets `command: [redis-server, /etc/redis/redis.conf]`, which bypasses the
    image's entrypoint: it runs as given, redis-server by its absolute path. The password reaches
    Redis as the manifest sends it: the `write-auth` init container (the same image, `sh -c ...`,
    run as given) writes `requirepass <password>` from the Secret's file into the `auth` volume,
    which redis.conf includes; nothing reads it from the environment (the official image has no
    REDIS_PASSWORD). Without `command`, `args` (default `redis-server`) go through the image's
    docker-entrypoint.sh (REDIS_ENTRYPOINT): a leading `-option` or `*.conf` gets `redis-server`
    put before it, and a umask of 0022 becomes 0077. `env` is not read: Redis's entrypoint
    reads none (taken for the same signature as the other stand-ins).

    Differences from the image: Redis 7.0, not 7.4.2; as root it stops with a message instead of
    stepping down to uid 999 with gosu (our manifests run as 999).
    """
    del env  # the redis image's entrypoint reads no environment variable
    command, args = _command_and_args(container)
    if command:  # replaces the image's entrypoint
        return _redis_program([*command, *args])
    argv = args or ["redis-server"]
    if argv[0].startswith("-") or argv[0].endswith(".conf"):
        argv = ["redis-server", *argv]
    return ["/bin/sh", "-c", REDIS_ENTRYPOINT, "docker-entrypoint.sh", *_redis_program(argv)]


# --- git-sync ------------------------------------------------------------------------------------

# Run by the sandbox's python as `python -I -c GIT_SYNC_SCRIPT REPOSITORIES_JSON [FLAGS...]`, with the
# container's environment. Standard library only; main.go of git-sync v4.4.2 is what it follows
# (function names in comments). git_sync_command also loads it to check a container's flags early.
GIT_SYNC_SCRIPT = r'''
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from types import SimpleNamespace


class ConfigError(Exception):
    """A flag or variable git-sync (or this emulation of it) refuses: it exits 1 before syncing."""


class SyncError(Exception):
    """A sync that failed: counted against --max-failures and retried."""


# --- flags and variables, parsed as git-sync's pflag/env.go do ---------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile("([0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text):
    """Go's time.ParseDuration ("30s", "1m30s", "500ms", "0"), in seconds."""
    s, sign = text.strip(), 1.0
    if s[:1] in ("+", "-"):
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if not match:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


def parse_bool(text):
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {text!r}: invalid syntax")


def parse_int(text):
    """Go's strconv.ParseInt(text, 0, 0): 0x, 0o, 0b and a leading 0 (octal) prefixes."""
    t = text.strip()
    if re.fullmatch("[+-]?0[0-7]+", t):
        return int(t, 8)
    return int(t, 0)


PARSERS = {"string": str, "strings": str, "int": parse_int, "bool": parse_bool, "duration": parse_duration}

# name -> (type, environment variables (the first wins), default, treatment). Treatment:
# "emulated"; "ignored": credentials and identity, which a local stand-in remote needs none of;
# "refused": not emulated, so a value other than the default stops the container with a message.
FLAGS = {
    "repo": ("string", ("GITSYNC_REPO", "GIT_SYNC_REPO"), "", "emulated"),
    "ref": ("string", ("GITSYNC_REF",), "HEAD", "emulated"),
    "depth": ("int", ("GITSYNC_DEPTH", "GIT_SYNC_DEPTH"), 1, "emulated"),
    "submodules": ("string", ("GITSYNC_SUBMODULES", "GIT_SYNC_SUBMODULES"), "recursive", "emulated"),
    "root": ("string", ("GITSYNC_ROOT", "GIT_SYNC_ROOT"), "", "emulated"),
    "link": ("string", ("GITSYNC_LINK", "GIT_SYNC_LINK"), "", "emulated"),
    "error-file": ("string", ("GITSYNC_ERROR_FILE", "GIT_SYNC_ERROR_FILE"), "", "emulated"),
    "period": ("duration", ("GITSYNC_PERIOD", "GIT_SYNC_PERIOD"), 10.0, "emulated"),
    "sync-timeout": ("duration", ("GITSYNC_SYNC_TIMEOUT", "GIT_SYNC_SYNC_TIMEOUT"), 120.0, "emulated"),
    "one-time": ("bool", ("GITSYNC_ONE_TIME", "GIT_SYNC_ONE_TIME"), False, "emulated"),
    "max-failures": ("int", ("GITSYNC_MAX_FAILURES", "GIT_SYNC_MAX_FAILURES"), 0, "emulated"),
    "touch-file": ("string", ("GITSYNC_TOUCH_FILE", "GIT_SYNC_TOUCH_FILE"), "", "emulated"),
    "group-write": ("bool", ("GITSYNC_GROUP_WRITE", "GIT_SYNC_GROUP_WRITE"), False, "emulated"),
    "stale-worktree-timeout": ("duration", ("GITSYNC_STALE_WORKTREE_TIMEOUT",), 0.0, "emulated"),
    "git": ("string", ("GITSYNC_GIT", "GIT_SYNC_GIT"), "git", "emulated"),
    "git-gc": ("string", ("GITSYNC_GIT_GC", "GIT_SYNC_GIT_GC"), "always", "emulated"),
    "http-bind": ("string", ("GITSYNC_HTTP_BIND", "GIT_SYNC_HTTP_BIND"), "", "emulated"),
    "verbose": ("int", ("GITSYNC_VERBOSE",), 0, "emulated"),
    "ssh-key-file": ("strings", ("GITSYNC_SSH_KEY_FILE", "GIT_SYNC_SSH_KEY_FILE", "GIT_SSH_KEY_FILE"),
                     "/etc/git-secret/ssh", "ignored"),
    "ssh-known-hosts": ("bool", ("GITSYNC_SSH_KNOWN_HOSTS", "GIT_SYNC_KNOWN_HOSTS", "GIT_KNOWN_HOSTS"), True, "ignored"),
    "ssh-known-hosts-file": ("string", ("GITSYNC_SSH_KNOWN_HOSTS_FILE", "GIT_SYNC_SSH_KNOWN_HOSTS_FILE",
                                        "GIT_SSH_KNOWN_HOSTS_FILE"), "/etc/git-secret/known_hosts", "ignored"),
    "username": ("string", ("GITSYNC_USERNAME", "GIT_SYNC_USERNAME"), "", "ignored"),
    "password-file": ("string", ("GITSYNC_PASSWORD_FILE", "GIT_SYNC_PASSWORD_FILE"), "", "ignored"),
    "credential": ("strings", ("GITSYNC_CREDENTIAL",), "", "ignored"),
    "cookie-file": ("bool", ("GITSYNC_COOKIE_FILE", "GIT_SYNC_COOKIE_FILE", "GIT_COOKIE_FILE"), False, "ignored"),
    "askpass-url": ("string", ("GITSYNC_ASKPASS_URL", "GIT_SYNC_ASKPASS_URL", "GIT_ASKPASS_URL"), "", "ignored"),
    "github-base-url": ("string", ("GITSYNC_GITHUB_BASE_URL",), "https://api.github.com/", "ignored"),
    "github-app-private-key-file": ("string", ("GITSYNC_GITHUB_APP_PRIVATE_KEY_FILE",), "", "ignored"),
    "github-app-client-id": ("string", ("GITSYNC_GITHUB_APP_CLIENT_ID",), "", "ignored"),
    "github-app-application-id": ("int", ("GITSYNC_GITHUB_APP_APPLICATION_ID",), 0, "ignored"),
    "github-app-installation-id": ("int", ("GITSYNC_GITHUB_APP_INSTALLATION_ID",), 0, "ignored"),
    "add-user": ("bool", ("GITSYNC_ADD_USER", "GIT_SYNC_ADD_USER"), False, "ignored"),
    "webhook-url": ("string", ("GITSYNC_WEBHOOK_URL", "GIT_SYNC_WEBHOOK_URL"), "", "refused"),
    "webhook-method": ("string", ("GITSYNC_WEBHOOK_METHOD", "GIT_SYNC_WEBHOOK_METHOD"), "POST", "refused"),
    "webhook-success-status": ("int", ("GITSYNC_WEBHOOK_SUCCESS_STATUS", "GIT_SYNC_WEBHOOK_SUCCESS_STATUS"), 200, "refused"),
    "webhook-timeout": ("duration", ("GITSYNC_WEBHOOK_TIMEOUT", "GIT_SYNC_WEBHOOK_TIMEOUT"), 1.0, "refused"),
    "webhook-backoff": ("duration", ("GITSYNC_WEBHOOK_BACKOFF", "GIT_SYNC_WEBHOOK_BACKOFF"), 3.0, "refused"),
    "exechook-command": ("string", ("GITSYNC_EXECHOOK_COMMAND", "GIT_SYNC_EXECHOOK_COMMAND"), "", "refused"),
    "exechook-timeout": ("duration", ("GITSYNC_EXECHOOK_TIMEOUT", "GIT_SYNC_EXECHOOK_TIMEOUT"), 30.0, "refused"),
    "exechook-backoff": ("duration", ("GITSYNC_EXECHOOK_BACKOFF", "GIT_SYNC_EXECHOOK_BACKOFF"), 3.0, "refused"),
    "sparse-checkout-file": ("string", ("GITSYNC_SPARSE_CHECKOUT_FILE", "GIT_SYNC_SPARSE_CHECKOUT_FILE"), "", "refused"),
    "sync-on-signal": ("string", ("GITSYNC_SYNC_ON_SIGNAL", "GIT_SYNC_SYNC_ON_SIGNAL"), "", "refused"),
    "git-config": ("string", ("GITSYNC_GIT_CONFIG", "GIT_SYNC_GIT_CONFIG"), "", "refused"),
    "http-metrics": ("bool", ("GITSYNC_HTTP_METRICS", "GIT_SYNC_HTTP_METRICS"), False, "refused"),
    "http-pprof": ("bool", ("GITSYNC_HTTP_PPROF", "GIT_SYNC_HTTP_PPROF"), False, "refused"),
}
# Variables without a flag: secrets, ignored like the flags of the credentials.
IGNORED_VARIABLES = ("GITSYNC_PASSWORD", "GIT_SYNC_PASSWORD", "GITSYNC_GITHUB_APP_PRIVATE_KEY")
# git-sync v3's names (v4 still reads them, converted): refused with their v4 name.
V3_NAMES = {"branch": "--ref", "rev": "--ref", "dest": "--link", "wait": "--period", "timeout": "--sync-timeout",
            "max-sync-failures": "--max-failures", "change-permissions": "--group-write",
            "sync-hook-command": "--exechook-command", "password": "$GITSYNC_PASSWORD", "ssh": "nothing", "v": "-v"}
V3_VARIABLES = {"GIT_SYNC_BRANCH": "GITSYNC_REF", "GIT_SYNC_REV": "GITSYNC_REF", "GIT_SYNC_DEST": "GITSYNC_LINK",
                "GIT_SYNC_WAIT": "GITSYNC_PERIOD", "GIT_SYNC_TIMEOUT": "GITSYNC_SYNC_TIMEOUT",
                "GIT_SYNC_MAX_SYNC_FAILURES": "GITSYNC_MAX_FAILURES", "GIT_SYNC_PERMISSIONS": "GITSYNC_GROUP_WRITE",
                "GIT_SYNC_HOOK_COMMAND": "GITSYNC_EXECHOOK_COMMAND"}


def parse_flags(args):
    """flag name -> the values given on the command line (--name=value, --name value, --bool, -v N)."""
    given, i = {}, 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
        elif arg.startswith("-") and len(arg) > 1 and not arg.startswith("--"):
            name, eq, value = arg[1:].partition("=")
            name = {"v": "verbose"}.get(name, "-" + name)
        else:
            raise ConfigError(f"unexpected argument {arg!r}: git-sync takes flags only")
        if name in V3_NAMES:
            raise ConfigError(f"flag --{name} is git-sync v3's: use {V3_NAMES[name]}")
        if name not in FLAGS:
            raise ConfigError(f"unknown flag: -{name}" if name.startswith("-") else f"unknown flag: --{name}")
        if not eq:
            if FLAGS[name][0] == "bool":
                value = "true"
            elif i < len(args):
                value, i = args[i], i + 1
            else:
                raise ConfigError(f"flag needs an argument: --{name}")
        given.setdefault(name, []).append(value)
    return given


def flag_value(name, given, environ):
    """The value of a flag: the command line's, else the first of its variables set, else the default."""
    kind, variables, default, _ = FLAGS[name]
    parse = PARSERS[kind]
    if name in given:
        try:
            values = [parse(v) for v in given[name]]
        except ValueError as error:
            raise ConfigError(f"invalid argument {given[name][-1]!r} for --{name}: {error}") from None
        return values if kind == "strings" else values[-1]
    for variable in variables:
        if variable in environ:
            try:
                value = parse(environ[variable])
            except ValueError as error:
                raise ConfigError(f"invalid {kind} env {variable}={environ[variable]!r}: {error}") from None
            return [value] if kind == "strings" else value
    return [default] if kind == "strings" else default


def parse_http_bind(bind):
    """(host, port) of Go's net.Listen address ("host:port", ":8081", "[::1]:8081")."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"invalid flag: --http-bind {bind!r} is not host:port")
    return host.strip("[]"), int(port)


def parse_config(args, environ, repositories):
    """The settings of a git-sync container from its flags and environment, checked as git-sync
    checks them (ConfigError otherwise), its --repo resolved to the local stand-in repository."""
    for variable, replacement in V3_VARIABLES.items():
        if variable in environ:
            raise ConfigError(f"${variable} is git-sync v3's: use ${replacement}")
    given = parse_flags(args)
    values = {name: flag_value(name, given, environ) for name in FLAGS}
    for name, (_, variables, default, treatment) in FLAGS.items():
        if treatment == "refused" and values[name] != default:
            raise ConfigError(f"--{name} (${variables[0]}) is not emulated by the git-sync stand-in")
    c = SimpleNamespace(**{name.replace("-", "_"): value for name, value in values.items()})
    c.ignored = sorted({f"--{name}" for name, spec in FLAGS.items() if spec[3] == "ignored" and
                        (name in given or any(v in environ for v in spec[1]))}
                       | {f"${v}" for v in IGNORED_VARIABLES if v in environ})
    if not c.root:
        raise ConfigError("required flag: --root must be specified")
    if not c.repo:
        raise ConfigError("required flag: --repo must be specified")
    if not c.ref:
        raise ConfigError("required flag: --ref must be specified")
    if c.depth < 0:
        raise ConfigError("invalid flag: --depth must be greater than or equal to 0")
    if c.submodules not in ("recursive", "shallow", "off"):
        raise ConfigError('invalid flag: --submodules must be one of "recursive", "shallow", or "off"')
    if c.git_gc not in ("auto", "always", "aggressive", "off"):
        raise ConfigError('invalid flag: --git-gc must be one of "auto", "always", "aggressive", or "off"')
    if c.period < 0.01:
        raise ConfigError("invalid flag: --period must be at least 10ms")
    if c.sync_timeout < 0.01:
        raise ConfigError("invalid flag: --sync-timeout must be at least 10ms")
    if not c.link:
        c.link = c.repo.strip("/").split("/")[-1]
    c.http = parse_http_bind(c.http_bind) if c.http_bind else None
    c.root = os.path.abspath(c.root)
    c.source = repositories.get(c.repo)
    if c.source is None:
        known = ", ".join(sorted(repositories)) or "none"
        raise ConfigError(f"no local repository stands in for the repo {c.repo!r} (--repo, $GITSYNC_REPO): "
                          f"`up` was given stand-ins for: {known}")
    return c


# --- logging, as git-sync's funcr JSON lines on stderr ----------------------------------------

VERBOSITY = 0
ERROR_FILE = ""


def log(level, msg, **values):
    if level <= VERBOSITY:
        record = {"logger": "", "ts": datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"), "level": level, "msg": msg}
        print(json.dumps({**record, **values}, default=str), file=sys.stderr, flush=True)


def log_error(error, msg, **values):
    record = {"logger": "", "ts": datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"), "msg": msg, "error": str(error)}
    print(json.dumps({**record, **values}, default=str), file=sys.stderr, flush=True)
    if ERROR_FILE:  # --error-file: the last error, replaced atomically
        try:
            os.makedirs(os.path.dirname(ERROR_FILE), 0o775, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(ERROR_FILE))
            with os.fdopen(handle, "w") as out:
                json.dump({"Msg": msg, "Err": str(error), "Args": values}, out, default=str)
            os.replace(temporary, ERROR_FILE)
            os.chmod(ERROR_FILE, 0o644)
        except OSError as problem:
            print(json.dumps({"msg": "can't write the error-file", "error": str(problem)}), file=sys.stderr, flush=True)


def delete_error_file():
    if ERROR_FILE:
        try:
            os.remove(ERROR_FILE)
        except FileNotFoundError:
            pass


# --- the sync (repoSync in main.go) ------------------------------------------------------------

class RepoSync:
    def __init__(self, c, git_env):
        self.c = c
        self.root = c.root
        self.link = c.link if os.path.isabs(c.link) else os.path.join(c.root, c.link)
        self.git_env = git_env
        self.sync_count = 0
        self.ready = False
        self.deadline = None

    def run(self, cwd, *args):
        """git args in cwd, within the sync's --sync-timeout; SyncError with git's output on failure."""
        timeout = None if self.deadline is None else max(0.01, self.deadline - time.monotonic())
        try:
            done = subprocess.run([self.c.git, *args], cwd=cwd or None, env=self.git_env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SyncError(f"Run(git {' '.join(args)}): timed out (--sync-timeout)") from None
        if done.returncode != 0:
            raise SyncError(f"Run(git {' '.join(args)}): exit status {done.returncode}: "
                            f"{{ stdout: {done.stdout.strip()!r}, stderr: {done.stderr.strip()!r} }}")
        return done.stdout

    def worktree_for(self, commit):
        return os.path.join(self.root, ".worktrees", commit)

    def current_worktree(self):
        """The worktree the link points at, "" without a link (currentWorktree)."""
        try:
            target = os.readlink(self.link)
        except FileNotFoundError:
            return ""
        except OSError as error:
            raise SyncError(f"can't read the link {self.link}: {error}") from None
        return target if os.path.isabs(target) else os.path.normpath(os.path.join(os.path.dirname(self.link), target))

    def sane_repo(self):
        """sanityCheckRepo: a non-empty root that is its own repository, consistent, not locked."""
        try:
            if not os.listdir(self.root):
                return False
            if self.run(self.root, "rev-parse", "--show-toplevel").strip() != self.root:
                log_error("", "repo directory is under another repo", path=self.root)
                return False
            self.run(self.root, "fsck", "--no-progress", "--connectivity-only")
        except (OSError, SyncError) as error:
            log_error(error, "repo directory failed checks", path=self.root)
            return False
        return not os.path.exists(os.path.join(self.root, ".git", "shallow.lock"))

    def init_repo(self):
        """initRepo: (re)initialise the repository in --root, its origin the --repo URL."""
        if not os.path.exists(self.root):
            os.makedirs(self.root, 0o775)
            need_init = True
        else:
            need_init = not self.sane_repo()
            if need_init:
                log(0, "repo directory was empty or failed checks", path=self.root)
                for entry in os.listdir(self.root):  # the contents: --root is usually a volume
                    path = os.path.join(self.root, entry)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.remove(path)
        if need_init:
            log(0, "initializing repo directory", path=self.root)
            self.run(self.root, "init", "-b", "git-sync")
            if not self.sane_repo():
                raise SyncError("can't initialize git repo directory")
        try:
            url = self.run(self.root, "remote", "get-url", "origin").strip()
        except SyncError as error:
            if "No such remote" not in str(error):
                raise
            self.run(self.root, "remote", "add", "origin", self.c.repo)
        else:
            if url != self.c.repo:
                self.run(self.root, "remote", "set-url", "origin", self.c.repo)

    def sane_worktree(self, worktree):
        """sanityCheckWorktree: non-empty, HEAD at its commit, consistent."""
        try:
            if not os.listdir(worktree):
                return False
            if self.run(worktree, "rev-parse", "HEAD").strip() != os.path.basename(worktree):
                return False
            self.run(worktree, "fsck", "--no-progress", "--connectivity-only")
        except (OSError, SyncError):
            return False
        return True

    def remove_worktree(self, worktree):
        if not os.path.exists(worktree):
            return
        log(1, "removing worktree", path=worktree)
        shutil.rmtree(worktree)
        self.run(self.root, "worktree", "prune", "--verbose")

    def create_worktree(self, commit):
        worktree = self.worktree_for(commit)
        self.remove_worktree(worktree)  # one a failed sync left half made
        log(1, "adding worktree", path=worktree, hash=commit)
        self.run(self.root, "worktree", "add", "--force", "--detach", worktree, commit, "--no-checkout")
        return worktree

    def configure_worktree(self, worktree):
        """configureWorktree: a relative gitdir (the volume may be mounted elsewhere), the files."""
        commit = os.path.basename(worktree)
        dot_git = os.path.join(os.path.relpath(self.root, worktree), ".git")
        with open(os.path.join(worktree, ".git"), "w") as out:
            out.write("gitdir: " + os.path.join(dot_git, "worktrees", commit) + "\n")
        sparse = os.path.join(self.root, ".git", "worktrees", commit, "info", "sparse-checkout")
        if os.path.exists(sparse):
            os.remove(sparse)
        log(1, "setting worktree HEAD", hash=commit)
        self.run(worktree, "reset", "--hard", commit, "--")
        if self.c.submodules != "off" and os.path.exists(os.path.join(worktree, ".gitmodules")):
            raise SyncError("the repository has submodules, which the git-sync stand-in does not sync "
                            "(--submodules=off syncs it without them)")

    def publish_symlink(self, worktree):
        """publishSymlink: a relative symlink made beside the link, then renamed over it (atomic)."""
        link_dir = os.path.dirname(self.link)
        os.makedirs(link_dir, 0o775, exist_ok=True)
        temporary = os.path.join(link_dir, "tmp-link")
        if os.path.lexists(temporary):  # left by a sync killed between the two steps
            os.remove(temporary)
        os.symlink(os.path.relpath(worktree, link_dir), temporary)
        os.rename(temporary, self.link)

    def fetch(self):
        args = ["fetch", self.c.source, self.c.ref, "--verbose", "--no-progress", "--prune", "--no-auto-gc"]
        if self.c.depth > 0:
            args += ["--depth", str(self.c.depth)]
        elif self.run(self.root, "rev-parse", "--is-shallow-repository").strip() == "true":
            args.append("--unshallow")
        self.run(self.root, *args)

    def sync_repo(self):
        """SyncRepo: fetch --ref, and when its commit is new, a worktree for it and the link flipped."""
        self.init_repo()
        current = self.current_worktree()
        current_hash = os.path.basename(current) if current else ""
        self.fetch()
        remote_hash = self.run(self.root, "rev-parse", "FETCH_HEAD^{}").strip()
        if current_hash == remote_hash and not self.sane_worktree(current):
            log(0, "worktree failed checks or was empty", path=current)
            self.remove_worktree(current)
            current_hash = ""
        changed = current_hash != remote_hash or current != self.worktree_for(current_hash)
        if changed or self.sync_count == 0:
            log(0, "update required", ref=self.c.ref, local=current_hash, remote=remote_hash, syncCount=self.sync_count)
            self.run(self.root, "reset", "--soft", remote_hash, "--")
            worktree = self.create_worktree(remote_hash) if changed else current
            self.configure_worktree(worktree)
            if changed:
                self.publish_symlink(worktree)
                if current and os.path.exists(current):
                    os.utime(current)  # the stale-worktree timer starts
            self.ready = True
            self.sync_count += 1
            log(0, "updated successfully", ref=self.c.ref, remote=remote_hash, syncCount=self.sync_count)
            if current_hash and current != self.worktree_for(current_hash):
                shutil.rmtree(current, ignore_errors=True)
        else:
            log(2, "update not required", ref=self.c.ref, remote=remote_hash, syncCount=self.sync_count)
        return changed, remote_hash

    def cleanup(self):
        """cleanup: worktrees other than the current one, older than --stale-worktree-timeout, go."""
        current = os.path.basename(self.current_worktree())
        base = self.worktree_for("")
        removed = 0
        for entry in os.listdir(base):
            path = os.path.join(base, entry)
            if entry != current and time.time() - os.stat(path).st_mtime > self.c.stale_worktree_timeout:
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
                removed += 1
        if removed == 0:
            return
        self.run(self.root, "worktree", "prune", "--verbose")
        self.run(self.root, "reflog", "expire", "--expire-unreachable=all", "--all")
        if self.c.git_gc != "off":
            self.run(self.root, "gc", *{"auto": ["--auto"], "aggressive": ["--aggressive"]}.get(self.c.git_gc, []))


def touch(path):
    os.makedirs(os.path.dirname(path), 0o775, exist_ok=True)
    try:
        os.utime(path)
    except FileNotFoundError:
        open(path, "a").close()


def serve_http(host, port, sync):
    """git-sync's HTTP endpoint: every path answers 503 until the first sync, then 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"" if sync.ready else b"repo is not ready\n"
            self.send_response(200 if sync.ready else 503)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    server = Server((host or "0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log(0, "serving HTTP", endpoint=f"{host}:{port}", reasons=["liveness"])


def main(argv):
    global VERBOSITY, ERROR_FILE
    try:
        c = parse_config(argv[1:], os.environ, json.loads(argv[0]))
    except ConfigError as error:
        print(f"FATAL: git-sync stand-in: {error}", file=sys.stderr, flush=True)
        return 1
    VERBOSITY = c.verbose
    os.umask(0o002 if c.group_write else 0o022)
    os.makedirs(c.root, 0o775, exist_ok=True)
    c.root = os.path.realpath(c.root)
    if c.error_file:
        ERROR_FILE = c.error_file if os.path.isabs(c.error_file) else os.path.join(c.root, c.error_file)
    touch_file = c.touch_file and (c.touch_file if os.path.isabs(c.touch_file) else os.path.join(c.root, c.touch_file))
    log(0, "starting up", version="v4 (stand-in)", pid=os.getpid(), uid=os.getuid(), gid=os.getgid(),
        home=os.environ.get("HOME"), repo=c.repo, source=c.source, ref=c.ref, root=c.root, link=c.link)
    if c.ignored:
        log(0, "ignored: the stand-in repository is local and needs no credentials", settings=c.ignored)
    if shutil.which(c.git) is None:
        log_error("not found on PATH", "FATAL: git executable not found", git=c.git)
        return 1
    # A private global config (GIT_CONFIG_GLOBAL), as git-sync makes one, with its defaults.
    handle, git_config = tempfile.mkstemp(prefix="git-sync.gitconfig.")
    os.close(handle)
    git_env = {**os.environ, "GIT_CONFIG_GLOBAL": git_config, "GIT_CONFIG_NOSYSTEM": "true"}
    try:
        for key, value in (("gc.autoDetach", "false"), ("gc.pruneExpire", "now"), ("core.askPass", "true"),
                           ("safe.directory", "*")):
            done = subprocess.run([c.git, "config", "--global", key, value], env=git_env, capture_output=True, text=True)
            if done.returncode != 0:
                log_error(done.stderr.strip(), "can't set default git configs", key=key)
                return 1
        sync = RepoSync(c, git_env)
        if c.http:
            try:
                serve_http(c.http[0], c.http[1], sync)
            except OSError as error:
                log_error(error, "can't bind HTTP endpoint", endpoint=c.http_bind)
                return 1
        return sync_forever(c, sync, touch_file)
    finally:
        os.remove(git_config)


def sync_forever(c, sync, touch_file):
    """git-sync's main loop: a sync every --period, exit 1 after --max-failures failures in a row,
    exit 0 after the first with --one-time, wait for a signal once --ref is a commit synced."""
    failures = syncs = 0
    while True:
        sync.deadline = time.monotonic() + c.sync_timeout
        try:
            changed, commit = sync.sync_repo()
        except (SyncError, OSError) as error:
            failures += 1
            if c.max_failures >= 0 and failures >= c.max_failures:
                log_error(error, "too many failures, aborting", failCount=failures)
                return 1
            log_error(error, "error syncing repo, will retry", failCount=failures)
        else:
            sync.ready = True
            if (changed or syncs == 0) and touch_file:  # the first loop counts as a sync
                touch(touch_file)
            syncs += 1
            try:
                sync.cleanup()
            except (SyncError, OSError) as error:
                log_error(error, "git cleanup failed")
            if c.one_time:
                delete_error_file()
                log(0, "exiting after one sync", status=0)
                return 0
            if commit == c.ref:
                log(0, "ref appears to be a git hash, no further sync needed", ref=c.ref)
                delete_error_file()
                while True:
                    signal.pause()
            failures = 0
            delete_error_file()
        finally:
            sync.deadline = None
        log(3, "next sync", waitTime=c.period, syncCount=sync.sync_count)
        time.sleep(c.period)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)  # so that the private git config is removed
    try:
        code = main(sys.argv[1:])
    except KeyboardInterrupt:  # SIGINT, as git-sync's sleepForever exits on it
        code = 0
    sys.exit(code)
'''


@functools.lru_cache(maxsize=1)
def _git_sync_module() -> Mapping[str, Any]:
    """GIT_SYNC_SCRIPT's functions, loaded here (not run) to check a container's flags early."""
    namespace: dict[str, Any] = {"__name__": "airflow_gitops_git_sync_standin"}
    exec(compile(GIT_SYNC_SCRIPT, "<git-sync stand-in>", "exec"), namespace)
    return namespace


def _stand_in_location(location: str | os.PathLike[str]) -> str:
    """A stand-in repository as git fetches it: a file:// URL as given, a path made absolute (the
    sandbox's working directory is not ours)."""
    location = os.fspath(location)
    return location if location.startswith("file://") else str(Path(location).expanduser().absolute())


_DEFAULT_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else os.path.realpath(sys.executable)
_GIT_SYNC_BINARIES = ("/git-sync", "git-sync")


def git_sync_command(container: Mapping[str, Any], env: Mapping[str, str], repositories: Mapping[str, str], *,
                     python: str = _DEFAULT_PYTHON) -> list[str]:
    """The command line that emulates git-sync v4 for `container`, syncing from local repositories.

    `repositories` maps the repo URLs the manifests name (GITSYNC_REPO / --repo, e.g.
    git@github.com:example/airflow-dags.git) to a local path or file:// URL standing in for the
    remote; the container's own URL missing there raises StandinError naming it (so does any flag
    or variable git-sync would refuse, checked now with the script's own parser). The script
    (GIT_SYNC_SCRIPT) runs under `python` (this machine's, visible in the sandbox) with `env` as
    its environment, and does what git-sync v4.4.2's main.go does: --root (default /git from the
    image's env) becomes a git repository; each sync fetches --ref (default HEAD) from the stand-in
    with --depth (default 1), and when the commit is new it checks it out into
    `<root>/.worktrees/<sha>` (a `git worktree`, its .git file relative), points the symlink
    `<root>/<link>` (--link, default the repo's last path part) at it by making `tmp-link` and
    renaming it over the link (atomic: a reader sees the old tree or the new one, never none),
    then removes the previous worktree (after --stale-worktree-timeout, default 0), prunes and
    runs `git gc` (--git-gc). With --one-time it exits 0 after the first successful sync;
    otherwise it syncs every --period (Go durations: 30s, 1m, 500ms). A failed sync is retried;
    --max-failures in a row (default 0: the first; -1: never) exits 1. With --http-bind (ours
    :8081) it serves the probes' endpoint: 503 "repo is not ready" until the first sync, then 200.
    When --ref is itself the commit synced it stops syncing and waits to be stopped. Logs are
    JSON lines on stderr; --error-file and --touch-file work as in git-sync; --group-write sets
    umask 0002.

    What differs from git-sync: no network and no credentials — the remote is the local stand-in,
    so the SSH key, known_hosts, username/password, cookie file, askpass URL and GitHub-app
    settings (our manifests set the SSH ones) are accepted and ignored, with a log line; the origin
    remote is still set to the real URL. Not emulated, refused with a message when set: webhooks,
    exechooks, sparse checkout, --sync-on-signal, --git-config, --http-metrics/--http-pprof, and
    v3's flag and variable names. Submodules are not synced: a repository with .gitmodules fails
    the sync unless --submodules=off. No --add-user, no pid-1 init (bubblewrap is the pod's init),
    no Prometheus metrics; a stale `tmp-link` from a killed sync is replaced, not an error; the
    container must let the script read the stand-in's path (a volume over it hides it: the caller
    binds it read-only at its own path, as compiled_pod does the virtualenv). A `command` other
    than git-sync's binary cannot run on this stand-in (StandinError).
    """
    name = container.get("name", "?")
    command, args = _command_and_args(container)
    if command:
        if command[0] not in _GIT_SYNC_BINARIES:
            raise StandinError(f"container {name}: command {command[0]!r} cannot run on the git-sync stand-in, "
                               "which emulates only the git-sync binary")
        args = [*command[1:], *args]
    stand_ins = {url: _stand_in_location(location) for url, location in repositories.items()}
    script: Mapping[str, Any] = _git_sync_module()
    config_error: type[Exception] = script["ConfigError"]
    parse_config: Callable[[Sequence[str], Mapping[str, str], Mapping[str, str]], Any] = script["parse_config"]
    try:
        config = parse_config(args, env, stand_ins)
    except config_error as error:
        raise StandinError(f"container {name} (git-sync): {error}") from None
    if not config.source.startswith("file://") and not Path(config.source).exists():
        raise StandinError(f"container {name} (git-sync): the local repository standing in for {config.repo} "
                           f"does not exist: {config.source}")
    return [python, "-I", "-c", GIT_SYNC_SCRIPT, json.dumps(stand_ins), *args]
