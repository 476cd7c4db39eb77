"""The runwright-cloud distribution: backend client, cloud runners and (extra) the server."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="runwright-cloud",
    version="0.1.0",
    description="runwright plugin: report runs to a runwright server; the self-hostable server",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["runwright_cloud", "runwright_cloud.*"]),
    package_data={
        "runwright_cloud": ["py.typed"],
        "runwright_cloud.server": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
    },
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        "runwright",
        "requests>=2.28",
        "cloudpickle>=2",
    ],
    extras_require={
        "server": [
            "fastapi>=0.100",
            "uvicorn>=0.23",
            "sqlalchemy>=2.0,<2.2",
            "alembic>=1.12",
            "pydantic>=2",
            "click>=8.1",
        ],
        "test": ["pytest", "schemathesis", "psycopg[binary]>=3.1"],
    },
    entry_points={"runwright": ["cloud = runwright_cloud.plugin:plugin"]},
)
