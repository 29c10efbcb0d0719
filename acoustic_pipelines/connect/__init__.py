"""Acoustic Connect side: the GraphQL schema we use, the client, signal and export rules, SFTP."""

from acoustic_pipelines.connect.client import (
    REGION_ENDPOINTS,
    ClientStats,
    ConnectClient,
    ExportJob,
)
from acoustic_pipelines.connect.errors import (
    AuthenticationError,
    ConnectError,
    DailyLimitReachedError,
    ForbiddenError,
    InvalidInputError,
    RateLimitedError,
    UnavailableError,
)
from acoustic_pipelines.connect.signals import (
    MAX_NAME_CHARS,
    MAX_SIGNALS_PER_CALL,
    SIGNAL_TYPES,
    TIERS,
    SignalProblem,
    SignalType,
    validate_signal,
    validate_signals,
)

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_SIGNALS_PER_CALL",
    "REGION_ENDPOINTS",
    "SIGNAL_TYPES",
    "TIERS",
    "AuthenticationError",
    "ClientStats",
    "ConnectClient",
    "ConnectError",
    "DailyLimitReachedError",
    "ExportJob",
    "ForbiddenError",
    "InvalidInputError",
    "RateLimitedError",
    "SignalProblem",
    "SignalType",
    "UnavailableError",
    "validate_signal",
    "validate_signals",
]
