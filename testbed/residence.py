"""honeyDue's two membership tables, as the residence-IDs cache probe reads them, with sample rows.

The drill and the tests build the same small world: residence -> owner, plus extra members, in a database of
their own on the machine's PostgreSQL (the admin DSN: $HONEYDUE_TEST_PG_DSN for the tests,
$HONEYDUE_DRILL_PG_DSN for the drill).
"""

from __future__ import annotations

import os
from typing import Any

import psycopg

# residence id -> owner user id, and (residence id, member user id) pairs
RESIDENCES = {10: 1, 11: 2, 12: 3}
MEMBERS = [(10, 2), (12, 1), (12, 4)]
DEFAULT_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def admin_dsn(variable: str) -> str:
    """The DSN of the machine's PostgreSQL as its superuser: $`variable`, or the local cluster's."""
    return os.environ.get(variable, DEFAULT_ADMIN_DSN)


def database_dsn(admin: str, dbname: str) -> str:
    """`admin` pointed at another database."""
    return admin.replace("dbname=postgres", f"dbname={dbname}")


def create_residence_tables(conn: psycopg.Connection[Any]) -> None:
    """(Re)create residence_residence and residence_residence_users with RESIDENCES and MEMBERS."""
    conn.execute("DROP TABLE IF EXISTS residence_residence_users, residence_residence")
    conn.execute("CREATE TABLE residence_residence (id bigserial PRIMARY KEY, owner_id bigint NOT NULL, "
                 "name text NOT NULL DEFAULT '', is_active boolean NOT NULL DEFAULT true)")
    conn.execute("CREATE TABLE residence_residence_users (id bigserial PRIMARY KEY, "
                 "residence_id bigint NOT NULL REFERENCES residence_residence(id) ON DELETE CASCADE, "
                 "user_id bigint NOT NULL, UNIQUE (residence_id, user_id))")
    for rid, owner in RESIDENCES.items():
        conn.execute("INSERT INTO residence_residence (id, owner_id, name) VALUES (%s, %s, %s)",
                     (rid, owner, f"home {rid}"))
    for rid, uid in MEMBERS:
        conn.execute("INSERT INTO residence_residence_users (residence_id, user_id) VALUES (%s, %s)", (rid, uid))
