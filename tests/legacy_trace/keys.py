"""Process keys and parent links: the columnar rewrite kept ntoslab/trace/keys.py unchanged, so
the oracle uses it as it is rather than a copy."""
from ntoslab.trace.keys import link_rows, normalize_guid  # noqa: F401
