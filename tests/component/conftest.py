"""Fixtures of the in-process component tests that several modules share."""

from collections.abc import Iterator

import mlflow
import pytest

from producers.sandbox.catalogue import Catalogue, CatalogueSize, generate_catalogue


@pytest.fixture(autouse=True)
def restore_tracking_uri() -> Iterator[None]:
    """A test that points MLflow at its own store leaves the next test the URI it found."""
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """The trainer tests' sandbox catalogue: 2,000 tracks with known signal."""
    return generate_catalogue(42, CatalogueSize(tracks=2000, artists=200, albums=500, playlists=12))
