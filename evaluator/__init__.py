"""roadworthy's evaluator: conservative off-policy evaluation of driving policies.

Importing this package loads no heavy optional dependency (carla, streamlit,
highway-env, ray); those are imported by the functions that need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("roadworthy")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
