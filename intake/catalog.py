"""The intake catalog (``config/intake.yaml``): IVR prompts and SMS questions in two languages.

Checked at start-up, so a missing Spanish prompt fails the deploy, not a caller's call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.campaigns import heard_from_menu, heard_from_prompt
from workflows.catalog_files import CatalogError, line_of, read_yaml, read_yaml_nodes
from workflows.vocabulary import LANGUAGES

VOICE_PROMPTS = (
    "greeting",
    "language_menu",
    "main_menu",
    "no_input",
    "emergency",
    "connecting",
    "voicemail",
    "no_recording",
    "reference",
    "passphrase",
    "passphrase_given",
    "repeat",
    "goodbye",
    "heard_from",
    "heard_from_thanks",
)
SMS_MESSAGES = ("welcome", "help", "emergency", "done", "received")
MENU_CHOICES = ("emergency", "operator", "voicemail")
# heard_from: an optional choice of workflows.campaigns.HEARD_FROM, by number; any
# other answer skips it. Its text's "{choices}" is filled with the numbered list.
QUESTION_KINDS = ("text", "yes_no", "heard_from")
CHOICES = "{choices}"
# Screening facts an SMS answer may set (workflows.screening.BOOLEAN_FACTS).
SMS_FACTS = ("victim_minor", "imminent_danger", "foreign_national")


@dataclass(frozen=True)
class SmsQuestion:
    key: str
    kind: str
    text: dict[str, str]
    emergency_on: str | None = None  # "yes" or "no": that answer pages the supervisor
    consent: str | None = None  # the consent this answer records, e.g. "callback"
    # The screening fact this yes/no answer sets (e.g. victim_minor); an emergency_on
    # answer sets imminent_danger through the emergency path.
    fact: str | None = None


@dataclass(frozen=True)
class IntakeCatalog:
    hotline_number: str
    say_language: dict[str, str]
    gather_timeout_seconds: int
    dial_timeout_seconds: int
    voicemail_max_seconds: int
    menu_digits: dict[str, str]
    prompts: dict[str, dict[str, str]]
    conversation_hours: int
    spanish_words: frozenset[str]
    english_words: frozenset[str]
    yes_words: dict[str, frozenset[str]]
    no_words: dict[str, frozenset[str]]
    messages: dict[str, dict[str, str]]
    questions: tuple[SmsQuestion, ...]

    def prompt(self, key: str, language: str, **values: str) -> str:
        """A voice prompt in the caller's language, with its blanks filled."""
        return self.prompts[key][language].format(**values)

    def message(self, key: str, language: str, **values: str) -> str:
        """An SMS text in the texter's language, with its blanks filled."""
        return self.messages[key][language].format(hotline_number=self.hotline_number, **values)


class _Checker:
    """Turns a bad value into CatalogError naming the file, the line and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.nodes = read_yaml_nodes(path)

    def fail(self, keys: tuple[str | int, ...], problem: str) -> CatalogError:
        name = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in keys)
        line = line_of(self.nodes, *keys)
        return CatalogError(f"{self.path}, line {line}: '{name}' {problem}")

    def section(self, data: Any, keys: tuple[str | int, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(keys, "must be a mapping")
        return data

    def bilingual(self, data: Any, keys: tuple[str | int, ...]) -> dict[str, str]:
        """Both languages present and non-empty, or fail naming the key."""
        entry = self.section(data, keys)
        for language in LANGUAGES:
            text = entry.get(language)
            if not isinstance(text, str) or not text.strip():
                raise self.fail(keys, f"needs a '{language}' text")
        return {language: " ".join(entry[language].split()) for language in LANGUAGES}

    def words(self, data: Any, keys: tuple[str | int, ...]) -> frozenset[str]:
        if not isinstance(data, list) or not all(isinstance(w, str) for w in data):
            raise self.fail(keys, "must be a list of words")
        return frozenset(w.strip().upper() for w in data)

    def number(self, data: dict[str, Any], keys: tuple[str, ...], maximum: int = 3600) -> int:
        value = data.get(keys[-1])
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
            raise self.fail(keys, f"must be a whole number from 1 to {maximum}")
        return value

    def question(self, data: Any, index: int) -> SmsQuestion:
        keys: tuple[str | int, ...] = ("sms", "questions", index)
        entry = self.section(data, keys)
        key, kind = entry.get("key"), entry.get("kind", "text")
        if not isinstance(key, str) or not key:
            raise self.fail(keys, "needs a key")
        if kind not in QUESTION_KINDS:
            raise self.fail((*keys, "kind"), f"must be one of {', '.join(QUESTION_KINDS)}")
        emergency_on = entry.get("emergency_on")
        if emergency_on is not None and (kind != "yes_no" or emergency_on not in ("yes", "no")):
            raise self.fail((*keys, "emergency_on"), "must be yes or no on a yes_no question")
        consent = entry.get("consent")
        if consent is not None and kind != "yes_no":
            raise self.fail((*keys, "consent"), "needs a yes_no question")
        fact = entry.get("fact")
        if fact is not None and (kind != "yes_no" or fact not in SMS_FACTS):
            raise self.fail((*keys, "fact"), f"must be one of {', '.join(SMS_FACTS)} on a "
                            "yes_no question")
        text = self.bilingual(entry, keys)
        if kind == "heard_from":
            text = self.with_choices(text, keys, heard_from_prompt)
        return SmsQuestion(key, kind, text, emergency_on, consent, fact)

    def with_choices(self, text: dict[str, str], keys: tuple[str | int, ...],
                     choices: Callable[[str], str]) -> dict[str, str]:
        """A question or prompt listing the heard-from choices: both texts must hold
        ``{choices}``, which is filled here, once, with the list in that language."""
        for language in LANGUAGES:
            if CHOICES not in text[language]:
                raise self.fail(keys, f"needs {CHOICES} in its '{language}' text")
        return {language: text[language].replace(CHOICES, choices(language))
                for language in LANGUAGES}


def load_intake_catalog(path: Path) -> IntakeCatalog:
    """Read and check ``intake.yaml``; CatalogError names the file, line and bad key."""
    data = read_yaml(path)
    check = _Checker(path)
    root = check.section(data, ())
    voice = check.section(root.get("voice"), ("voice",))
    sms = check.section(root.get("sms"), ("sms",))
    prompts = check.section(voice.get("prompts"), ("voice", "prompts"))
    messages = check.section(sms.get("messages"), ("sms", "messages"))
    digits = check.section(voice.get("menu_digits"), ("voice", "menu_digits"))
    if sorted(digits) != sorted(MENU_CHOICES) or len({str(d) for d in digits.values()}) != 3:
        raise check.fail(
            ("voice", "menu_digits"), f"needs 3 different digits for {', '.join(MENU_CHOICES)}"
        )
    questions = sms.get("questions")
    if not isinstance(questions, list) or not questions:
        raise check.fail(("sms", "questions"), "must be a non-empty list")
    yes_words = check.section(sms.get("yes_words"), ("sms", "yes_words"))
    no_words = check.section(sms.get("no_words"), ("sms", "no_words"))
    return IntakeCatalog(
        hotline_number=str(root.get("hotline_number") or ""),
        say_language=check.bilingual(voice.get("say_language"), ("voice", "say_language")),
        gather_timeout_seconds=check.number(voice, ("voice", "gather_timeout_seconds"), 60),
        dial_timeout_seconds=check.number(voice, ("voice", "dial_timeout_seconds"), 600),
        # Twilio transcribes only recordings of 2 to 120 seconds.
        voicemail_max_seconds=check.number(voice, ("voice", "voicemail_max_seconds"), 120),
        menu_digits={choice: str(digits[choice]) for choice in MENU_CHOICES},
        prompts={
            **{k: check.bilingual(prompts.get(k), ("voice", "prompts", k))
               for k in VOICE_PROMPTS},
            "heard_from": check.with_choices(
                check.bilingual(prompts.get("heard_from"), ("voice", "prompts", "heard_from")),
                ("voice", "prompts", "heard_from"), heard_from_menu),
        },
        conversation_hours=check.number(sms, ("sms", "conversation_hours"), 24 * 30),
        spanish_words=check.words(sms.get("spanish_words"), ("sms", "spanish_words")),
        english_words=check.words(sms.get("english_words"), ("sms", "english_words")),
        yes_words={
            lang: check.words(yes_words.get(lang), ("sms", "yes_words", lang)) for lang in LANGUAGES
        },
        no_words={
            lang: check.words(no_words.get(lang), ("sms", "no_words", lang)) for lang in LANGUAGES
        },
        messages={
            k: check.bilingual(messages.get(k), ("sms", "messages", k)) for k in SMS_MESSAGES
        },
        questions=tuple(check.question(q, i) for i, q in enumerate(questions)),
    )
