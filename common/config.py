"""What every stage's config shares: the strict base model and the identifier rule."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Camera, site and other ids: lower-case letters, digits, "_" and "-", as in URLs and S3 keys.
IDENTIFIER = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored.

    Example:
        >>> class Section(StrictModel):
        ...     port: int = 80
        >>> try:
        ...     Section.model_validate({"prot": 81})
        ... except ValueError as error:
        ...     print(error.errors()[0]["loc"], error.errors()[0]["type"])
        ('prot',) extra_forbidden
    """

    model_config = ConfigDict(extra="forbid")
