"""The base of every model of the config file (``config``, ``group_config``, ``auth.settings``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; fields are read by name or alias.

    ``defer_build``: a model's schema is built when first used (for the config file, once, as part of
    the whole config's) instead of once per class at import and again inside the whole config's; a
    third of the config models' import time at boot."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)
