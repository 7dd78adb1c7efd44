"""What user code running in a work sees of the worker's deployment."""

from __future__ import annotations

from workflow import Client, Work

from .conftest import FN, wait_status


def test_work_methods_in_user_code_use_the_workers_deployment(client: Client, start_worker) -> None:
    # A stale environment: the worker itself is told where to go by its options.
    stale = {"WORKFLOW_REDIS_URL": "redis://127.0.0.1:1/0"}
    start_worker("ctx", FN + "whose_client", env=stale)
    work = Work(pipeline="ctx")
    client.deposit([work])
    stored = wait_status(client, work, "success", "failure")
    assert stored.results == {"url": client.settings.url, "prefix": client.settings.prefix}
