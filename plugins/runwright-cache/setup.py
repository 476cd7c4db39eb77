"""The runwright-cache distribution: cache validators, key-based cache policies and a
persistent SQLite cache store, so a cached task does not run again in a new process."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="runwright-cache",
    version="0.1.0",
    description="runwright plugin: caching policies and a persistent, multi-process cache store",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["runwright_cache", "runwright_cache.*"]),
    package_data={"runwright_cache": ["py.typed"]},
    author="The runwright authors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["workflow", "runwright", "cache"],
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
    # runwright-local provides the default result handler ([engine] result_handler = "local")
    # that stores cached results: without it every cached task would run again.
    install_requires=["runwright>=0.1,<0.2", "runwright-local>=0.1,<0.2", "cloudpickle>=2.2"],
    extras_require={"test": ["pytest"]},
    entry_points={"runwright": ["cache = runwright_cache.plugin:plugin"]},
)
