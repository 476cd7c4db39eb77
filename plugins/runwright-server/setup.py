"""The runwright-server distribution: the self-hostable runwright backend server."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="runwright-server",
    version="0.1.0",
    description="The self-hostable runwright server: flow runs, task runs, states, results, logs",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    # The Alembic scripts are modules of namespace packages (no __init__.py), listed so that
    # setuptools ships them without warning; the .mako template is their package data.
    packages=[
        *find_packages(include=["runwright_server", "runwright_server.*"]),
        "runwright_server.migrations",
        "runwright_server.migrations.versions",
    ],
    package_data={
        "runwright_server": ["py.typed"],
        # the web UI: templates, its own CSS/JS and the vendored browser libraries
        "runwright_server.ui": ["templates/*.html", "static/*.*", "static/vendor/VERSIONS", "static/vendor/*/*"],
        "runwright_server.migrations": ["script.py.mako"],
    },
    author="The runwright authors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["workflow", "runwright", "server", "fastapi"],
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
        "fastapi>=0.100",
        "uvicorn>=0.23",
        "sqlalchemy>=2.0,<2.2",
        "alembic>=1.12",
        "pydantic>=2",
        "click>=8.1",
        "jinja2>=3.1",
    ],
    extras_require={
        "test": ["pytest", "requests>=2.28", "schemathesis", "psycopg[binary]>=3.1"],
        "postgres": ["psycopg[binary]>=3.1"],
    },
    entry_points={"runwright": ["server = runwright_server.plugin"]},
)
