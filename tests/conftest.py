"""Shared fixtures: a small bureau with one user per role, built through the services."""

import pytest

from tests.factories import Bureau


@pytest.fixture
def bureau(db) -> Bureau:
    """A bureau with districts A and B and a dispatcher, reviewer, leader, supervisor and handlers."""
    return Bureau()


def pytest_collection_modifyitems(items):
    """Run tests marked ``django_db(serialized_rollback=True)`` last (after pytest-django's ordering).

    Such a test restores the migrated data (role groups, deadline policies, beat schedule) before it
    runs, but Django's teardown then flushes without re-running post_migrate, leaving an empty
    database behind; other transactional tests that rely on the migrated data must not follow it.
    """

    def restores_its_own_data(item) -> bool:
        marker = item.get_closest_marker("django_db")
        return bool(marker and marker.kwargs.get("serialized_rollback"))

    items.sort(key=restores_its_own_data)
