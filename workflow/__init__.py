"""workflow: a Redis-native work queue for scientific pipelines.

from workflow import Work
Work(pipeline="sample-pipeline", parameters={"a": 1, "b": 2}).deposit()
"""

from workflow.client import Client, default_client, set_default_client
from workflow.errors import (
    ConnectionError,
    CorruptWork,
    InvalidTransition,
    LeaseLost,
    ServerError,
    ValidationError,
    WorkflowError,
    WorkNotFound,
)
from workflow.results import Results
from workflow.settings import Settings
from workflow.work import Failure, Work

__all__ = [
    "Client",
    "ConnectionError",
    "CorruptWork",
    "Failure",
    "InvalidTransition",
    "LeaseLost",
    "Results",
    "ServerError",
    "Settings",
    "ValidationError",
    "Work",
    "WorkNotFound",
    "WorkflowError",
    "default_client",
    "set_default_client",
]
__version__ = "0.1.0"
