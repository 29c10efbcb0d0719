"""Secrets never sit in the pipeline config file: the one rule that finds them, anywhere in it.

A key *looks secret* when its words (split at ``_``, ``-``, ``.`` and camelCase) hold a password,
a secret, a token, a credential, or an api / app / access / private key: ``s3_secret``,
``apiKey``, ``app_key_value``, ``sftp_password``, ``private_key_path``. Such a key is refused
wherever it stands (destinations, mappings, the loosely typed ``signals`` and ``exports``) when it
holds a literal (text, a number, or a list holding one); the message names the key's dotted path
and says which environment variable to use instead, and never shows the value.

A key whose last word is ``env`` names the environment variable that holds the secret
(``app_key_env: ACOUSTIC_APP_KEY``) and is allowed, as long as its value is a variable name.
An object under a secret-looking key is searched like any other (``credentials: {user_env: …}``),
and a mapping directive such as ``api_key: {"@path": "$.context.api_key"}`` is not a literal.
"""

from __future__ import annotations

import re
from typing import Any, Final

from acoustic_pipelines import settings

__all__ = ["S3_ACCESS_KEY_ENV", "S3_SECRET_ENV", "looks_secret", "secret_problems"]

#: Environment variables the S3 keys of a destination come from (never the config file).
S3_ACCESS_KEY_ENV: Final = settings.ACOUSTIC_S3_ACCESS_KEY_ENV
S3_SECRET_ENV: Final = settings.ACOUSTIC_S3_SECRET_ENV

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_WORDS: Final = frozenset(
    (
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "authorization",
        "apikey",
        "appkey",
        "accesskey",
        "privatekey",
        "secretkey",
    )
)
_SECRET_PAIRS: Final = frozenset(
    (("api", "key"), ("app", "key"), ("access", "key"), ("private", "key"), ("write", "key"))
)


def _words(key: str) -> list[str]:
    """The lower-case words of a key: ``"s3_secretKey"`` → ``["s", "3", "secret", "key"]``."""
    return [word.lower() for word in _WORDS.findall(key)]


def looks_secret(key: str) -> bool:
    """Whether a config key names a secret (``s3_secret``, ``apiKey``, ``sftp_password``, …)."""
    words = _words(key)
    return any(word in _SECRET_WORDS for word in words) or any(
        pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False)
    )


def _holds_literal(value: Any) -> bool:
    """Text or a number (not a boolean), or a list holding one: what a secret would be."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str | int | float):
        return True
    return isinstance(value, list) and any(_holds_literal(item) for item in value)


def _env_name_for(words: list[str]) -> str:
    """A suggested variable name for a key's words: ``app_key`` → ``ACOUSTIC_APP_KEY``."""
    return "_".join(["ACOUSTIC", *(word for word in words if word != "acoustic")]).upper()


def _secret_message(loc: tuple[str | int, ...]) -> str:
    """Why a secret-looking key is refused and what to write instead, for its place in the file."""
    key = str(loc[-1])
    head = f"`{key}` looks like a secret, and secrets never go in the config file"
    if len(loc) == 3 and loc[0] == "destinations":
        return (
            f"{head}: remove it and set the environment variables {S3_ACCESS_KEY_ENV} and "
            f"{S3_SECRET_ENV}"
        )
    if len(loc) > 5 and loc[0] == "destinations" and loc[4] == "mapping":
        return f'{head}: take it from the event ({{"@path": "$.properties.{key}"}}) or leave it out'
    return (
        f"{head}: set an environment variable and name it here instead, "
        f"e.g. `{key}_env: {_env_name_for(_words(key))}`"
    )


def _env_key_problem(key: str, value: Any) -> str | None:
    """The problem with a ``…_env`` key whose value is not a variable name (None when it is)."""
    if value is None or (isinstance(value, str) and _ENV_NAME.fullmatch(value)):
        return None
    return (
        f"`{key}` names the environment variable that holds a secret; expected a variable name "
        f"such as {_env_name_for(_words(key)[:-1])} (letters, digits, `_`); got a value that is "
        "not one (not shown: it may be the secret itself)"
    )


def secret_problems(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Every secret-looking key of the raw config data that holds a literal, with its location.

    Args:
        data: the config as read from YAML (dicts, lists, scalars), or any part of it.

    Returns:
        ``(location, message)`` per refused key, in file order; the location is the key's path
        as a tuple (``("signals", "app_key")``).
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, list):
            stack.extend((item, (*loc, index)) for index, item in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        children: list[tuple[Any, tuple[str | int, ...]]] = []
        for key, value in node.items():
            if not isinstance(key, str):
                continue
            at = (*loc, key)
            if not looks_secret(key):
                children.append((value, at))
            elif _words(key)[-1] == "env":
                problem = _env_key_problem(key, value)
                if problem:
                    found.append((at, problem))
            elif _holds_literal(value):
                found.append((at, _secret_message(at)))
            else:
                children.append((value, at))
        stack.extend(reversed(children))
    return found
