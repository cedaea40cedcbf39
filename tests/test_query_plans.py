"""The list's queries keep to the indexes that make them flat as sessions grow (measured at
1,000,000 sessions in docs/benchmarks.md): SQLite's plan for every page shape walks an index
in the page's order (no sort of the user's sessions), and both counts are covering index
scans. The plan does not depend on how many rows there are (no statistics are gathered)."""
import pytest

from gensessions.db import connected
from gensessions.models import db
from gensessions.models.session import COUNTS, LIVE_BY_ID, PAGES
from helpers import NOW


def plan(app, prepared, *arguments):
    with connected(app):
        sql, params = prepared.sql(arguments)
        return " | ".join(row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.sqlite_only
@pytest.mark.parametrize("filtered, after, index", [
    (False, False, "session_user_id_created_at_id (user_id=?)"),
    (False, True, "session_user_id_created_at_id (user_id=? AND (created_at,id)<(?,?))"),
    (True, False, "session_user_id_status_created_at_id_expires_at (user_id=? AND status=?)"),
    (True, True, "session_user_id_status_created_at_id_expires_at (user_id=? AND status=? AND "
                 "(created_at,id)<(?,?))"),
], ids=["first-page", "cursor-page", "status-page", "status-cursor-page"])
def test_every_page_walks_an_index_in_page_order(app, filtered, after, index):
    text = plan(app, PAGES[filtered, after], "u", NOW, "planning", NOW, "sess_x", 21, 0)
    assert "TEMP B-TREE" not in text, text
    assert f"USING INDEX {index}" in text, text


@pytest.mark.sqlite_only
@pytest.mark.parametrize("filtered, index", [
    (False, "session_user_id_expires_at (user_id=? AND expires_at>?)"),
    (True, "session_user_id_status_created_at_id_expires_at (user_id=? AND status=?)"),
], ids=["total", "status-total"])
def test_counts_are_covering_index_scans(app, filtered, index):
    text = plan(app, COUNTS[filtered], "u", NOW, "planning")
    assert text == f"SEARCH t1 USING COVERING INDEX {index}", text


@pytest.mark.sqlite_only
def test_a_session_is_found_by_its_primary_key(app):
    text = plan(app, LIVE_BY_ID, "sess_x", "u", NOW)
    assert "USING INDEX sqlite_autoindex_session_1 (id=?)" in text, text
