"""How a caller heard of the hotline: one question asked in every channel.

The answer measures outreach (a campaign that raised calls 40 % shows up here). Codes
only, never free text: the same list is the IVR's digits, the SMS answer's numbers, the
web form's and the call log's choices, and the statistics' categories.
"""

from __future__ import annotations

HEARD_FROM: dict[str, dict[str, str]] = {
    "friend_family": {"en": "a friend or relative", "es": "un amigo o familiar"},
    "social_media": {"en": "social media", "es": "redes sociales"},
    "poster_billboard": {"en": "a poster, sign or billboard", "es": "un cartel o anuncio"},
    "tv_radio": {"en": "TV or radio", "es": "televisión o radio"},
    "web_search": {"en": "an internet search", "es": "una búsqueda en internet"},
    "professional": {"en": "police, a social worker or another professional",
                     "es": "la policía, un trabajador social u otro profesional"},
    "other": {"en": "another way", "es": "otra forma"},
}
# Digits (IVR) and numbers (SMS) in the order above: 1 = friend_family, …, 7 = other.
BY_DIGIT = {str(i): code for i, code in enumerate(HEARD_FROM, start=1)}


def heard_from_code(answer: str | None) -> str | None:
    """A code from a digit, a number or a code itself; None for anything else."""
    if answer is None:
        return None
    value = answer.strip().lower()
    if value in HEARD_FROM:
        return value
    return BY_DIGIT.get(value)


def heard_from_prompt(lang: str) -> str:
    """The choices read aloud or texted: "1 a friend or relative, 2 …"."""
    return ", ".join(f"{digit} {HEARD_FROM[code][lang]}" for digit, code in BY_DIGIT.items())


_FOR = {"en": "for", "es": "para"}


def heard_from_menu(lang: str) -> str:
    """The choices as an IVR reads them: "1 for a friend or relative, 2 for …"."""
    return ", ".join(f"{digit} {_FOR[lang]} {HEARD_FROM[code][lang]}"
                     for digit, code in BY_DIGIT.items())
