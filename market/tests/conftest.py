import pytest

from market.relay import process_stream


@pytest.fixture(autouse=True)
async def _fresh_process_stream():
    """Each test's event loop gets its own relay (and embedded hub), stopped afterwards."""
    yield
    await process_stream.stop()
