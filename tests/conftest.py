"""Shared fixtures: a small bureau with one user per role, built through the services."""

import pytest

from tests.factories import Bureau


@pytest.fixture
def bureau(db) -> Bureau:
    """A bureau with districts A and B and a dispatcher, reviewer, leader, supervisor and handlers."""
    return Bureau()


@pytest.fixture(scope="session", autouse=True)
def _close_sessions_left_by_server_threads(django_db_setup, django_db_blocker):
    """End PostgreSQL sessions that finished live-server request threads left open.

    Their threads are gone but their connections stay open until garbage collection, and an open
    session stops Django from dropping the test database at the end of the run.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
