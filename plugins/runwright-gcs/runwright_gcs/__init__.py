"""runwright-gcs: store task results in Google Cloud Storage.

    from runwright import Flow, task
    from runwright_gcs import GCSResultHandler

    @task(checkpoint=True, result_handler=GCSResultHandler(bucket="my-results", prefix="etl"))
    def extract():
        return {"rows": 3}

Installing the package registers the handler under the name ``gcs``, so configuration can
choose it (``[engine] result_handler = "gcs"`` with ``[plugins.gcs] bucket = "..."``).
Each result is a write-once object ``gs://bucket/<prefix>/<uuid4>.rwr``;
``runwright.read_uri`` reads it back in any process with access to the bucket.
Credentials: Application Default Credentials, ``GOOGLE_APPLICATION_CREDENTIALS`` or
``[plugins.gcs] credentials``; ``STORAGE_EMULATOR_HOST`` selects an emulator.
"""

from runwright_gcs.handler import GCSResultHandler

__all__ = ["GCSResultHandler"]
__version__ = "0.1.0"
