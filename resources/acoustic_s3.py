"""Acoustic's S3 access point, through dagster-aws's S3Resource."""

from typing import Any

from dagster_aws.s3 import S3Resource
from dagster_aws.s3.utils import construct_s3_client

from acoustic_pipelines import settings


class AcousticS3Resource(S3Resource):
    """dagster-aws's S3Resource aimed at Acoustic's S3 access points (an alias is the bucket).

    The keys come from `dagster.EnvVar` (see definitions.py); the endpoint, when not configured,
    from `$ACOUSTIC_S3_ENDPOINT_URL` at run time (the sandbox), else AWS. The region is the
    destination's own (`region` in the pipeline config).
    """

    def get_client_for(self, region: str) -> Any:
        """A boto3 S3 client for one destination's region."""
        return construct_s3_client(
            max_attempts=self.max_attempts,
            region_name=region or self.region_name,
            endpoint_url=self.endpoint_url or settings.acoustic_s3_endpoint_url(),
            use_unsigned_session=self.use_unsigned_session,
            profile_name=self.profile_name,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )
