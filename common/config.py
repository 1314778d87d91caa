"""What every stage's config shares: the strict base model, the identifier rule and the rule
that text holds no control characters."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

# Camera, site and other ids: lower-case letters, digits, "_" and "-", as in URLs and S3 keys.
IDENTIFIER = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# C0 and C1 controls (line breaks, NUL, escapes) and the marks that reorder how text is shown:
# a name holding one could forge a log line, or read otherwise than it is stored.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def refuse_control_characters(value: object) -> object:
    """`value` as it is, unless a string in it (or in its lists and mappings) holds a control
    character: then a ValueError naming the character by its code point, never the text.

    Example:
        >>> refuse_control_characters(["东门", "gate 2"])
        ['东门', 'gate 2']
        >>> refuse_control_characters({"name": "ok\\r\\nX-Injected: 1"})
        Traceback (most recent call last):
        ValueError: holds the control character U+000D
    """
    if isinstance(value, str):
        found = CONTROL_CHARACTER.search(value)
        if found is not None:
            raise ValueError(f"holds the control character U+{ord(found.group()):04X}")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            refuse_control_characters(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_control_characters(key)
            refuse_control_characters(item)
    return value


class StrictModel(BaseModel):
    """Base for config sections and request bodies: unknown keys are errors, not silently
    ignored, and no text holds a control character.

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

    @field_validator("*")
    @classmethod
    def _plain_text(cls, value: object) -> object:
        """No field holds a control character: every name and text of a config or a request
        may end up in a log line."""
        return refuse_control_characters(value)
