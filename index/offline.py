"""The offline switches: one place that names them, one helper that sets them.

The product never reaches the network unless a user asks for it (a URL to index, an LLM
server): no Hugging Face Hub downloads, no telemetry from Chroma or Gradio. The entry points
(the `articleqa` command in `ui.cli`, the web app in `ui.app`, `qa.ArticleQA.open` for the
Python API) call `apply_offline_environment()`; library modules never write the environment
when they are imported.

Some libraries read these variables once, when they are first imported (huggingface_hub reads
HF_HUB_OFFLINE into a constant), so an entry point calls the helper before importing them.
Values the user already set are kept (`setdefault`): `HF_HUB_OFFLINE=0` still allows a download.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# No downloads from the Hugging Face Hub: models load from a local folder or the local cache.
HUB_OFFLINE: Mapping[str, str] = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# No usage reports from Chroma and Gradio.
NO_TELEMETRY: Mapping[str, str] = {"ANONYMIZED_TELEMETRY": "False", "GRADIO_ANALYTICS_ENABLED": "False"}
OFFLINE_ENVIRONMENT: Mapping[str, str] = {**HUB_OFFLINE, **NO_TELEMETRY}


def apply_offline_environment(variables: Mapping[str, str] = OFFLINE_ENVIRONMENT) -> dict[str, str]:
    """Set each of `variables` in `os.environ` unless it is already set; return the ones set."""
    applied = {}
    for name, value in variables.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied
