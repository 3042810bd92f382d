"""vmqpy packaging metadata; `make` installs it into .venv in editable mode."""

import re
from pathlib import Path

from setuptools import Extension, find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"', Path("vmqpy/__init__.py").read_text()).group(1)

setup(
    name="vmqpy",
    version=VERSION,
    description="A distributed MQTT broker on gevent, operated like VerneMQ",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["vmqpy", "vmqpy.*"]),
    package_data={"vmqpy": ["admin/status/*", "plugins/vmq_diversity/lua/auth/*.lua"]},
    # The compiled twin of the decoder's common case (vmqpy/mqtt/_speedups.c). Optional: without a C
    # compiler and Python headers the install goes on and the pure-Python decoder does everything.
    # No debug info (-g0): it would record the build directory in the release.
    ext_modules=[Extension("vmqpy.mqtt._speedups", ["vmqpy/mqtt/_speedups.c"], optional=True,
                           extra_compile_args=["-g0"])],
    install_requires=[
        "gevent>=24.2",
        "greenlet>=3.0",
        "sortedcontainers>=2.4",
        "rocksdict>=0.3.23",
        "ujson>=5.9",
        "configobj>=5.0.8",
        "gunicorn>=22.0",
        "pyyaml>=6.0",
        "bcrypt>=4.1",
        "prometheus_client>=0.20",
        "h11>=0.14",
        "msgpack>=1.0",  # the cluster wire format (vmqpy/cluster/wire.py)
        "cryptography>=41",  # certificates: vmq-admin tls show|check, CRLs
        # vmq_diversity (docs/diversity.md): embedded Lua and the database drivers its scripts call
        "lupa>=2.0",
        "psycopg[binary]>=3.2",
        "PyMySQL>=1.1",
        "redis>=5.0",
        "pymemcache>=4.0",
        "pymongo>=4.6",
        "PyJWT[crypto]>=2.8",  # vmq_jwt
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "paho-mqtt>=2.1", "ruff>=0.6", "wsproto>=1.2",
                 "hypothesis>=6",
                 "atheris>=2.3"],  # bench/fuzz and its short run in the suite (test/unit/test_codec_fuzz.py)
    },
    entry_points={
        "console_scripts": [
            "vernemq=vmqpy.scripts.vernemq:main",
            "vmq-admin=vmqpy.scripts.vmq_admin:main",
            "vmq-passwd=vmqpy.scripts.vmq_passwd:main",
        ],
    },
)
