"""Which names hold a credential: the one predicate both sides apply.

The server child masks secret-named items in the reprs of locals it sends
(:mod:`devconsole.child.insight`); the console masks query and form fields,
JSON fields, headers and locals by the same rule (:mod:`devconsole.model.secrets`).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

#: A field, key, header or local whose name contains one of these (any case) is masked.
SECRET_FIELD_WORDS = ("password", "token", "secret", "key", "session")
#: What a masked value becomes.
MASK = "********"


def is_secret_field(name: str) -> bool:
    """Whether a field (query, form, JSON key, header, local) named ``name`` holds a credential."""
    lowered = unquote_plus(name).lower() if "%" in name or "+" in name else name.lower()
    return any(word in lowered for word in SECRET_FIELD_WORDS)
