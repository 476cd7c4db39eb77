"""The core distribution of runwright, built from ``core/``."""

from setuptools import find_packages, setup

setup(
    name="runwright",
    version="0.1.0",
    description="A fast, pluggy-based workflow engine for Python",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    package_dir={"": "core"},
    packages=find_packages("core"),
    package_data={"runwright": ["config.toml", "py.typed"]},
    python_requires=">=3.11",
    install_requires=[
        "pluggy>=1.3",
        "click>=8.1",
        "rich>=13.0",
        "cloudpickle>=2.2",
        "cronsim>=2.8",
    ],
    entry_points={
        "console_scripts": ["runwright = runwright.cli:main"],
        "pytest11": ["runwright = runwright.testing.pytest_plugin"],
    },
    classifiers=["Framework :: Pytest", "Programming Language :: Python :: 3"],
)
