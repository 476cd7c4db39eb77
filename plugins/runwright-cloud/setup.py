"""The runwright-cloud distribution: the client of a runwright server and the cloud runners.

The server is its own distribution, runwright-server; the ``server`` extra is an alias that
installs it (for the embedded server of the quick start, or to host one).
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="runwright-cloud",
    version="0.1.0",
    description="runwright plugin: report runs to a runwright server (the cloud runners and client)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["runwright_cloud", "runwright_cloud.*"]),
    package_data={"runwright_cloud": ["py.typed"]},
    author="The runwright authors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["workflow", "runwright", "orchestration"],
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
    install_requires=[
        "runwright>=0.1,<0.2",
        "requests>=2.28",
        "cloudpickle>=2",
    ],
    extras_require={
        "server": ["runwright-server"],
        # The tests run a real server in a subprocess (runwright_server.testing).
        "test": ["pytest", "runwright-server[test]"],
    },
    entry_points={"runwright": ["cloud = runwright_cloud.plugin:plugin"]},
)
