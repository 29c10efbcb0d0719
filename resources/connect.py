"""Acoustic Connect's GraphQL API as a resource: the API key, and the endpoint or region."""

import os

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.connect.client import REGION_ENDPOINTS, ConnectClient

_REGIONS = ", ".join(REGION_ENDPOINTS)


class AcousticConnectResource(dg.ConfigurableResource):
    """Hands Acoustic Connect clients to the assets.

    The API key is a secret: definitions.py reads it with `dg.EnvVar("ACOUSTIC_API_KEY")`. The
    endpoint, when not configured, comes from `$ACOUSTIC_CONNECT_ENDPOINT` at run time (the
    sandbox sets it), else from the region's documented host.
    """

    api_key: str = Field(description="The Connect API key (set it with dg.EnvVar, never inline)")
    endpoint: str | None = Field(
        default=None,
        description=f"GraphQL URL; unset: ${settings.ACOUSTIC_CONNECT_ENDPOINT_ENV} at run time, "
        "else the region's host",
    )
    region: str = Field(default="us-east-1", description=f"The Connect region: {_REGIONS}")
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for each response")
    max_retries: int = Field(
        default=5, ge=0, description="Retries of network errors, HTTP 429 and 5xx per call"
    )

    def get_client(self, tier: str) -> ConnectClient:
        """A client for the subscription `tier` (the environment is read here, at run time)."""
        endpoint = self.endpoint or os.environ.get(settings.ACOUSTIC_CONNECT_ENDPOINT_ENV) or None
        try:
            return ConnectClient(
                api_key=self.api_key,
                endpoint=endpoint,
                region=None if endpoint else self.region,
                tier=tier,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        except ValueError as exc:
            raise dg.Failure(
                description=f"Acoustic Connect resource: {exc}", allow_retries=False
            ) from exc
