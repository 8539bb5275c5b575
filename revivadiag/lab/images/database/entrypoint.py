#!/usr/bin/python3
"""Database entrypoint: PostgreSQL 15 from Debian, initialised on an empty data volume.

Runs as root only long enough to create /var/run/postgresql (Debian's server needs it, owned
by postgres) and fix the data directory's owner, then drops to the postgres user.
``--prepare`` (run once at image build) runs initdb, starts a socket-only server, creates the
POSTGRES_USER role (no password yet) and the POSTGRES_DB database owned by it, loads
schema.sql as that role, seeds SEED_USER_EMAIL / SEED_USER_PASSWORD (PBKDF2-hashed) and stops
it. Docker copies that cluster into the empty named volume on first use; the first start then
only sets the role's password to POSTGRES_PASSWORD in single-user mode (no listener) and
leaves a marker. On an empty PGDATA without the prepared cluster (e.g. a bind mount) the
whole initialisation runs at start, with the password. Then it execs
postgres listening on every address, with scram-sha-256 for all TCP clients.
The password goes to psql on stdin, never on a command line.
"""

import hashlib
import os
import pwd
import secrets
import subprocess
import sys

BIN = "/usr/lib/postgresql/15/bin"
SOCKETS = "/var/run/postgresql"
PBKDF2_ITERATIONS = 100_000
HBA = (
    "local all all peer\n"
    "host all all 0.0.0.0/0 scram-sha-256\n"
    "host all all ::/0 scram-sha-256\n"
)


def quote(value):
    """An SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def password_hash(password):
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


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
        raise SystemExit(f"database: {argv[0]} failed with {proc.returncode}")


def init_sql(env, password):
    """Role, database, schema and seed user; the role gets ``password`` when one is given."""
    user, db = env.get("POSTGRES_USER", "revivatech"), env.get("POSTGRES_DB", "revivatech")
    with open("/etc/revivadiag/schema.sql", encoding="utf-8") as fh:
        schema = fh.read()
    email = env.get("SEED_USER_EMAIL", "test@example.com").lower()
    seed_pw = env.get("SEED_USER_PASSWORD", "password")
    with_password = f" PASSWORD {quote(password)}" if password else ""
    return (
        f'CREATE ROLE "{user}" LOGIN{with_password};\n'
        f'CREATE DATABASE "{db}" OWNER "{user}";\n'
        f'\\connect "{db}"\n'
        f'SET ROLE "{user}";\n'
        f"{schema}\n"
        f"INSERT INTO users (email, name, password_hash) VALUES "
        f"({quote(email)}, 'Test User', {quote(password_hash(seed_pw))}) "
        f"ON CONFLICT (email) DO NOTHING;\n"
    )


def initialise(pgdata, env, password):
    """initdb + role, database, schema and seed user (through a socket-only server)."""
    print("database: initialising a new cluster", flush=True)
    run([f"{BIN}/initdb", "-D", pgdata, "--username=postgres", "--auth-local=peer",
         "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
    with open(os.path.join(pgdata, "pg_hba.conf"), "w", encoding="utf-8") as fh:
        fh.write(HBA)
    # -l: the server's output goes to a file, not to our pipes (run() would wait for EOF)
    run([f"{BIN}/pg_ctl", "-D", pgdata, "-w", "-l", "/tmp/postgres-init.log", "-o",
         f"-c listen_addresses='' -c unix_socket_directories={SOCKETS}", "start"])
    run([f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", SOCKETS, "-U", "postgres",
         "-d", "postgres"], stdin=init_sql(env, password))
    run([f"{BIN}/pg_ctl", "-D", pgdata, "-w", "-m", "fast", "stop"])
    print("database: schema and seed user created", flush=True)


def set_password(pgdata, env, password):
    """Give the prepared role its instance password, in single-user mode (nothing listens)."""
    user = env.get("POSTGRES_USER", "revivatech")
    run([f"{BIN}/postgres", "--single", "-D", pgdata, "postgres"],
        stdin=f'ALTER ROLE "{user}" PASSWORD {quote(password)};\n')
    print("database: instance password set", flush=True)


def main():
    pgdata = os.environ.get("PGDATA", "/var/lib/postgresql/data")
    env = dict(os.environ)
    if os.getuid() == 0:
        become_postgres(pgdata)
    if sys.argv[1:] == ["--prepare"]:
        # at image build: a ready cluster without any password; Docker copies it into an
        # empty named volume on first use, so `lab up` skips initdb (seconds under load)
        initialise(pgdata, env, None)
        return
    password = env.get("POSTGRES_PASSWORD", "")
    if not password:
        raise SystemExit("database: POSTGRES_PASSWORD is not set")
    marker = os.path.join(pgdata, ".revivadiag-password-set")
    if not os.path.exists(os.path.join(pgdata, "PG_VERSION")):
        initialise(pgdata, env, password)
    elif not os.path.exists(marker):
        set_password(pgdata, env, password)
    with open(marker, "w", encoding="utf-8") as fh:
        fh.write("1\n")
    os.execv(f"{BIN}/postgres", [
        f"{BIN}/postgres", "-D", pgdata, "-c", "listen_addresses=*",
        "-c", f"unix_socket_directories={SOCKETS}", "-c", "password_encryption=scram-sha-256",
    ])


if __name__ == "__main__":
    main()
