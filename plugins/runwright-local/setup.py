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
    author="The runwright authors",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["workflow", "runwright", "results"],
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
    install_requires=["runwright>=0.1,<0.2", "cloudpickle>=2.2"],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"runwright": ["local = runwright_local.plugin"]},
)
