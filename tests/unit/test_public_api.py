"""The public surface is explicit, sorted, and importable."""

from __future__ import annotations

import workflow
from workflow import errors


def test_all_sorted_and_importable() -> None:
    assert workflow.__all__ == sorted(workflow.__all__)
    for name in workflow.__all__:
        assert getattr(workflow, name) is not None


def test_every_error_is_a_workflow_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.WorkflowError), name


def test_error_codes_raise_the_documented_errors() -> None:
    import pytest

    with pytest.raises(errors.WorkNotFound, match="w1"):
        errors.raise_for_code(errors.ErrorCode.NOT_FOUND, "w1")
    with pytest.raises(errors.LeaseLost):
        errors.raise_for_code(errors.ErrorCode.LEASE_LOST, "w1")
    with pytest.raises(errors.InvalidTransition, match="'success'"):
        errors.raise_for_code(errors.ErrorCode.BAD_STATUS, "w1", status="success", operation="x")
    with pytest.raises(errors.ScriptError):
        errors.raise_for_code(-99, "w1")


def test_cli_ships_inside_the_package() -> None:
    import workflow.cli.main

    assert workflow.cli.main.__name__ == "workflow.cli.main"
