"""Default configuration files shipped with the package (policy and pipeline params)."""

from importlib.resources import files

POLICY_FILE = files(__name__) / "policy.yaml"
PARAMS_FILE = files(__name__) / "params.yaml"
MAPPINGS_DIR = files(__name__) / "mappings"
