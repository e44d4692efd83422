"""Shared fixtures: a small bureau with one user per role, built through the services."""

import pytest

from tests.factories import Bureau


@pytest.fixture
def bureau(db) -> Bureau:
    """A bureau with districts A and B and a dispatcher, reviewer, leader, supervisor and handlers."""
    return Bureau()
