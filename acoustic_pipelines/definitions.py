"""The Dagster code location: one `Definitions` assembled from `assets/` and `resources/`."""

import dagster as dg

from acoustic_pipelines import settings
from acoustic_pipelines.config.loading import load_config
from assets import acoustic, automation, exports, segment, sensors, signals
from assets.catalog import with_code_references, with_code_version
from assets.connections import build_connections, configured_connections
from resources import AcousticConnectResource, LakeResource, SegmentArchiveResource
from resources.acoustic_s3 import AcousticS3Resource
from resources.connections import SegmentConnectionsResource
from resources.exports import AcousticSftpResource, ExportLedgerResource
from resources.pipeline_config import PipelineConfigResource

# The pipeline config is checked when the code location loads, so `dagster definitions validate`
# and the UI's reload fail on an invalid file with every problem listed, not the first run.
load_config()

# Segment Connections: one asset, job and (when scheduled) schedule per model of the config.
connection_assets, connection_jobs, connection_schedules = build_connections(
    configured_connections()
)

ASSETS = [
    segment.archive,
    segment.raw_events,
    acoustic.mapped_events,
    acoustic.s3_csv_delivery,
    signals.signal_pushes,
    exports.export_plan,
    exports.export_jobs,
    exports.exported_signals,
    *connection_assets,
]

defs = dg.Definitions(
    assets=with_code_references(with_code_version(ASSETS)),
    asset_checks=[segment.raw_events_partition_consistent],
    jobs=[
        automation.daily_pipeline_job,
        automation.collect_exports_job,
        automation.submit_deferred_exports_job,
        *connection_jobs,
    ],
    schedules=[automation.daily_pipeline_schedule, *connection_schedules],
    sensors=[
        automation.exported_files_sensor,
        automation.deferred_exports_sensor,
        sensors.segment_archive_observations,
        sensors.segment_archive_complete_days,
    ],
    resources={
        "segment_archive": SegmentArchiveResource(),
        "lake": LakeResource(),
        "pipeline_config": PipelineConfigResource(),
        "acoustic_s3": AcousticS3Resource(
            aws_access_key_id=dg.EnvVar(settings.ACOUSTIC_S3_ACCESS_KEY_ENV),
            aws_secret_access_key=dg.EnvVar(settings.ACOUSTIC_S3_SECRET_ENV),
        ),
        "acoustic_connect": AcousticConnectResource(
            api_key=dg.EnvVar(settings.ACOUSTIC_API_KEY_ENV)
        ),
        "acoustic_sftp": AcousticSftpResource(
            key_path=dg.EnvVar(settings.ACOUSTIC_SFTP_KEY_PATH_ENV)
        ),
        "export_ledger": ExportLedgerResource(),
        "segment_connections": SegmentConnectionsResource(),
    },
)
