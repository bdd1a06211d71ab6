"""What the harness asks the polls database directly: ids to vote on, vote totals, resets.

Counting votes in the database (not trusting the client) is how the integrity audit knows what
the stack really did.
"""

from __future__ import annotations

from gatewaybench.stack.postgres import Dsn


def question_ids(dsn: Dsn) -> list[int]:
    conn = dsn.connect()  # closed here: psycopg2's `with conn` only ends the transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM polls_question ORDER BY id")
            return [int(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


def total_votes(dsn: Dsn) -> int:
    conn = dsn.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(votes), 0) FROM polls_choice")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def reset_votes(dsn: Dsn) -> None:
    """Every server starts from the same data: zero votes and a freshly vacuumed table."""
    conn = dsn.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE polls_choice SET votes = 0")
            cur.execute("VACUUM ANALYZE polls_choice")
    finally:
        conn.close()


def vacuum_analyze(dsn: Dsn) -> None:
    """The whole database vacuumed and analysed (a template, before it is copied)."""
    conn = dsn.connect()
    conn.autocommit = True  # VACUUM cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    finally:
        conn.close()
