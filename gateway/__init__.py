"""Tessera gateway core: the canonical competency-evidence model, its store, auth and API.

The core never knows a wire format; adapters (package ``adapters``) translate standards
to and from the canonical model and are found through the ``tessera.adapters``
entry-point group.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the source tree: the data folders ``mappings/`` and ``schemas/`` live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
