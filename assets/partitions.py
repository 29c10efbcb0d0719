"""The one daily partitioning every asset shares: UTC days from the configured start date."""

import dagster as dg

from acoustic_pipelines.settings import start_date

# Partition definitions are static, so the start date is read when the code location loads.
daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date().isoformat(), timezone="UTC")
