"""The runwright-local distribution: local-file result storage for runwright."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent

setup(
    name="runwright-local",
    version="0.1.0",
    description="runwright plugin: store task results as atomically written local files",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=["runwright_local"],
    package_data={"runwright_local": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=["runwright>=0.1", "cloudpickle>=2.2"],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"runwright": ["local = runwright_local.plugin"]},
)
