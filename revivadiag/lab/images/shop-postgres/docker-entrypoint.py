#!/usr/bin/python3
"""PostgreSQL 15 from Debian, started the way the official image's entrypoint does.

As root it prepares /var/run/postgresql and PGDATA, then drops to the postgres user.
``--prepare`` (image build): initdb, a socket-only server, the POSTGRES_USER role (no password
yet) owning the POSTGRES_DB database, the files in /docker-entrypoint-initdb.d loaded as that
role, stop. Docker copies the cluster into an empty named volume on first use; the first start
then sets the role's password to POSTGRES_PASSWORD in single-user mode (nothing listens) and
leaves a marker. ``postgres`` (the CMD) runs the server on every address with scram-sha-256.
The password reaches PostgreSQL on stdin, never on a command line.
"""

import glob
import os
import pwd
import subprocess
import sys

BIN = "/usr/lib/postgresql/15/bin"
SOCKETS = "/var/run/postgresql"
HBA = (
    "local all all peer\n"
    "host all all 0.0.0.0/0 scram-sha-256\n"
    "host all all ::/0 scram-sha-256\n"
)


def quote(value):
    """An SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(value):
    """An SQL identifier."""
    return '"' + value.replace('"', '""') + '"'


def become_postgres(pgdata):
    user = pwd.getpwnam("postgres")
    os.makedirs(SOCKETS, exist_ok=True)
    os.chown(SOCKETS, user.pw_uid, user.pw_gid)
    os.chmod(SOCKETS, 0o2775)
    os.makedirs(pgdata, exist_ok=True)
    os.chown(pgdata, user.pw_uid, user.pw_gid)
    os.chmod(pgdata, 0o700)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir


def run(argv, stdin=None):
    proc = subprocess.run(argv, input=stdin, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"postgres: {os.path.basename(argv[0])} failed with {proc.returncode}")


def init_sql(user, db, password):
    with_password = f" PASSWORD {quote(password)}" if password else ""
    parts = [f"CREATE ROLE {ident(user)} LOGIN{with_password};",
             f"CREATE DATABASE {ident(db)} OWNER {ident(user)};",
             f"\\connect {ident(db)}", f"SET ROLE {ident(user)};"]
    for path in sorted(glob.glob("/docker-entrypoint-initdb.d/*.sql")):
        with open(path, encoding="utf-8") as fh:
            parts.append(fh.read())
    return "\n".join(parts) + "\n"


def initialise(pgdata, user, db, password):
    print("postgres: initialising a new cluster", flush=True)
    run([f"{BIN}/initdb", "-D", pgdata, "--username=postgres", "--auth-local=peer",
         "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
    with open(os.path.join(pgdata, "pg_hba.conf"), "w", encoding="utf-8") as fh:
        fh.write(HBA)
    run([f"{BIN}/pg_ctl", "-D", pgdata, "-w", "-l", "/tmp/postgres-init.log", "-o",
         f"-c listen_addresses='' -c unix_socket_directories={SOCKETS}", "start"])
    run([f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", SOCKETS, "-U", "postgres",
         "-d", "postgres"], stdin=init_sql(user, db, password))
    run([f"{BIN}/pg_ctl", "-D", pgdata, "-w", "-m", "fast", "stop"])


def main():
    pgdata = os.environ.get("PGDATA", "/var/lib/postgresql/data")
    user = os.environ.get("POSTGRES_USER", "postgres")
    db = os.environ.get("POSTGRES_DB", user)
    if os.getuid() == 0:
        become_postgres(pgdata)
    if sys.argv[1:] == ["--prepare"]:
        initialise(pgdata, user, db, None)
        return
    if sys.argv[1:2] != ["postgres"]:
        os.execvp(sys.argv[1], sys.argv[1:])
    password = os.environ.get("POSTGRES_PASSWORD", "")
    if not password:
        raise SystemExit("postgres: POSTGRES_PASSWORD is not set")
    marker = os.path.join(pgdata, ".password-set")
    if not os.path.exists(os.path.join(pgdata, "PG_VERSION")):
        initialise(pgdata, user, db, password)
    elif not os.path.exists(marker):
        run([f"{BIN}/postgres", "--single", "-D", pgdata, "postgres"],
            stdin=f"ALTER ROLE {ident(user)} PASSWORD {quote(password)};\n")
        print("postgres: password set", flush=True)
    with open(marker, "w", encoding="utf-8") as fh:
        fh.write("1\n")
    os.execv(f"{BIN}/postgres", [
        f"{BIN}/postgres", "-D", pgdata, "-c", "listen_addresses=*",
        "-c", f"unix_socket_directories={SOCKETS}", "-c", "password_encryption=scram-sha-256",
        *sys.argv[2:],
    ])


if __name__ == "__main__":
    main()
