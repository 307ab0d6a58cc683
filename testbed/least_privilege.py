"""Apply the documented least-privilege Redis ACL and Postgres role (deploy/least-privilege/) in tests.

The tests run the files themselves, so the documentation is exactly what is proven.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import psycopg
import redis

from testbed.paths import DEPLOY
from testbed.residence import admin_dsn, create_residence_tables, database_dsn

LEAST_PRIVILEGE = DEPLOY / "least-privilege"
PG_DSN = admin_dsn("HONEYDUE_TEST_PG_DSN")
ACL_USER = "honeydue-exporter"


def acl_rules() -> list[str]:
    """The rules of the `user honeydue-exporter ...` line, without the placeholder password."""
    lines = [line for line in (LEAST_PRIVILEGE / "redis-acl.conf").read_text().splitlines() if line.startswith("user ")]
    assert len(lines) == 1, lines
    _, name, *rules = lines[0].split()
    assert name == ACL_USER
    return [rule for rule in rules if rule != ">CHANGE_ME"]


def apply_redis_acl(admin: redis.Redis, password: str) -> None:
    admin.execute_command("ACL", "SETUSER", ACL_USER, "reset", *acl_rules(), f">{password}")  # type: ignore[no-untyped-call]


def dsn(dbname: str) -> str:
    return database_dsn(PG_DSN, dbname)


def create_residence_schema(dbname: str) -> None:
    """The residence world (the two tables the residence cache probe reads), plus one it must not (auth_user)."""
    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        create_residence_tables(conn)
        conn.execute("DROP TABLE IF EXISTS auth_user")
        conn.execute("CREATE TABLE auth_user (id bigserial PRIMARY KEY, password text NOT NULL)")
        conn.execute("INSERT INTO auth_user (password) VALUES ('pbkdf2$not-for-the-exporter')")


@dataclass
class PgRole:
    name: str
    password: str
    dbname: str

    def drop(self) -> None:
        with psycopg.connect(dsn(self.dbname), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{self.name}"')  # revokes its grants, the database's included
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')


def create_pg_role(dbname: str, password: str) -> PgRole:
    """Run postgres-role.sql with a unique role name (roles are cluster-wide) in `dbname`."""
    name = f"honeydue_exporter_{uuid.uuid4().hex[:8]}"
    sql = (LEAST_PRIVILEGE / "postgres-role.sql").read_text()
    sql = re.sub(r"\bhoneydue_exporter\b", name, sql)
    sql = sql.replace("DATABASE honeydue ", f'DATABASE "{dbname}" ').replace("'CHANGE_ME'", f"'{password}'")
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]
    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())
    return PgRole(name, password, dbname)
