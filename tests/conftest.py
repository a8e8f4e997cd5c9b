"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """Small shapes gain nothing from threads, and on a busy machine every parallel region
    waits for a descheduled thread (20x slower here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
