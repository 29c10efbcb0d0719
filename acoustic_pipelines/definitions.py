"""The Dagster code location: one `Definitions` assembled from `assets/` and `resources/`."""

import dagster as dg

from acoustic_pipelines import settings
from assets import acoustic, automation, exports, segment, signals
from resources import AcousticConnectResource, LakeResource, SegmentArchiveResource
from resources.acoustic_s3 import AcousticS3Resource
from resources.exports import AcousticSftpResource, ExportLedgerResource
from resources.pipeline_config import PipelineConfigResource

defs = dg.Definitions(
    assets=[
        segment.raw_events,
        acoustic.mapped_events,
        acoustic.s3_csv_delivery,
        signals.signal_pushes,
        exports.export_plan,
        exports.export_jobs,
        exports.exported_signals,
    ],
    asset_checks=[segment.raw_events_partition_consistent],
    jobs=[
        automation.daily_pipeline_job,
        automation.collect_exports_job,
        automation.submit_deferred_exports_job,
    ],
    schedules=[automation.daily_pipeline_schedule],
    sensors=[automation.exported_files_sensor, automation.deferred_exports_sensor],
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
    },
)
