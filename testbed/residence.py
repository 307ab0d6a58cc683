"""honeyDue's two membership tables, as the residence-IDs cache probe reads them, with sample rows.

The drill and the tests build the same small world: residence -> owner, plus extra members.
"""

from __future__ import annotations

from typing import Any

import psycopg

# residence id -> owner user id, and (residence id, member user id) pairs
RESIDENCES = {10: 1, 11: 2, 12: 3}
MEMBERS = [(10, 2), (12, 1), (12, 4)]


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
