"""Apply the documented least-privilege Redis ACL and Postgres role (deploy/least-privilege/) in tests.

The tests run the files themselves, so the documentation is exactly what is proven.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from tests.conftest import PG_DSN

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy" / "least-privilege"
ACL_USER = "honeydue-exporter"


def acl_rules() -> list[str]:
    """The rules of the `user honeydue-exporter ...` line, without the placeholder password."""
    lines = [line for line in (DEPLOY / "redis-acl.conf").read_text().splitlines() if line.startswith("user ")]
    assert len(lines) == 1, lines
    _, name, *rules = lines[0].split()
    assert name == ACL_USER
    return [rule for rule in rules if rule != ">CHANGE_ME"]


def apply_redis_acl(admin: redis.Redis, password: str) -> None:
    admin.execute_command("ACL", "SETUSER", ACL_USER, "reset", *acl_rules(), f">{password}")


def dsn(dbname: str) -> str:
    return PG_DSN.replace("dbname=postgres", f"dbname={dbname}")


def create_residence_schema(dbname: str) -> None:
    """The two tables the residence cache probe reads, plus one it must not (auth_user)."""
    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS residence_residence_users, residence_residence, auth_user")
        conn.execute("CREATE TABLE residence_residence (id bigserial PRIMARY KEY, owner_id bigint NOT NULL)")
        conn.execute("CREATE TABLE residence_residence_users (id bigserial PRIMARY KEY, "
                     "residence_id bigint NOT NULL REFERENCES residence_residence(id) ON DELETE CASCADE, "
                     "user_id bigint NOT NULL)")
        conn.execute("CREATE TABLE auth_user (id bigserial PRIMARY KEY, password text NOT NULL)")
        conn.execute("INSERT INTO residence_residence (id, owner_id) VALUES (10, 1), (11, 2), (12, 3)")
        conn.execute("INSERT INTO residence_residence_users (residence_id, user_id) VALUES (10, 2), (12, 1), (12, 4)")
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
    sql = (DEPLOY / "postgres-role.sql").read_text()
    sql = re.sub(r"\bhoneydue_exporter\b", name, sql)
    sql = sql.replace("DATABASE honeydue ", f'DATABASE "{dbname}" ').replace("'CHANGE_ME'", f"'{password}'")
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]
    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())
    return PgRole(name, password, dbname)
