"""A test client of the API holding a key of the role and sites a test asks for."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.testclient import TestClient

from storage.accounts import ApiKeys, Role
from storage.index import EventIndex


def make_key(index: EventIndex, role: Role = "admin", sites: Sequence[str] = ()) -> str:
    """A new key of `role` for `sites` (every site when none are given: admin, operator)."""
    _, key = ApiKeys(index).create(f"{role} of tests", role, sites, not sites, by="tests")
    return key


def api_client(
    app: FastAPI, index: EventIndex, role: Role = "admin", sites: Sequence[str] = ()
) -> TestClient:
    """A TestClient (use it in a `with`) that sends a new key of `role` with every request."""
    key = make_key(index, role, sites)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})
