import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from market.stream.relay import process_stream


@pytest.fixture(autouse=True)
async def _fresh_process_stream():
    """Each test's event loop gets its own relay (and embedded hub), stopped afterwards."""
    yield
    await process_stream.stop()


@pytest.fixture(autouse=True)
def _close_consumer_connections():
    """Consumers reach the database from asgiref's one worker thread, whose (persistent)
    connection would otherwise outlive the tests and keep PostgreSQL from dropping the test
    database."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
