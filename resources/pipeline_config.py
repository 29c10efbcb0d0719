"""The pipeline config file (destinations, mappings, signal rules, exports) as a resource."""

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.config.loading import ConfigError, PipelineConfig, load_config


class PipelineConfigResource(dg.ConfigurableResource):
    """Loads and validates the pipeline config file once per run."""

    path: str | None = Field(
        default=None,
        description=f"Config file; unset: ${settings.CONFIG_ENV}, else {settings.DEFAULT_CONFIG}",
    )

    def load(self) -> PipelineConfig:
        """The validated config; an invalid file fails the run with every problem listed."""
        try:
            return load_config(self.path)
        except ConfigError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
