"""Secrets in config and in the feeds topic: references travel, values do not.

A secret (a feed's password, a sensitive header's value, proxy credentials, the WebSub
secret, the SASL password) is written either as a literal or as a *reference*:

* ``{env: NAME}`` — the value of the environment variable ``NAME``;
* ``{file: /run/secrets/x}`` — the content of that file (one trailing newline dropped).

Why references: the feeds topic is readable by every client of the cluster that may read
it (fetchers, tools, whoever an ACL lets in) and keeps old values until compaction; config
literals belong to the operator's file, so they are never copied onto the topic: seeding
writes ``{config: true}`` in their place, which the owning fetcher resolves from its own
config file (only for the same feed id at the same origin).  A feed's references are
resolved at fetch time, so a rotated file is picked up without a restart; a reference that
cannot be resolved fails that feed (outcome ``secret``), never the process.

Because a reference makes the fetcher read its environment or a file and send the value to
the feed's origin, whoever can write the topic could point a reference at an unrelated
secret; so feed references are resolved only from environment variables matching
``fetch.secret_env`` and files under ``fetch.secret_dirs`` (see docs/security.md).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, model_validator
from yarl import URL

#: What every printed or logged secret is replaced with.
MASK = "***"
#: A secret file larger than this is not a secret but a mistake (or an attack on memory).
MAX_SECRET_FILE_BYTES = 64 * 1024

_SENSITIVE_NAME = re.compile(
    r"auth|token|key|secret|passw|cookie|session|signature|credential|bearer", re.IGNORECASE
)


def sensitive_header(name: str) -> bool:
    """Headers whose values are credentials: never stored as literals, never printed.

    Broad on purpose (``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``X-Api-Key``,
    ``X-Auth-Token``, ...): masking a harmless value costs nothing, leaking a token costs a lot.
    """
    return bool(_SENSITIVE_NAME.search(name))


class SecretRef(BaseModel):
    """Where a secret is, not what it is: safe to store on the feeds topic and to print."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None
    config: bool = False  # "the literal in the owning fetcher's config file" (written by seeding)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [self.env is not None, self.file is not None, self.config]
        if sum(given) != 1:
            raise ValueError("a secret reference is exactly one of {env: NAME}, {file: PATH}")
        if self.env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.env):
            raise ValueError("{env: NAME}: NAME must be an environment variable name")
        if self.file is not None and not os.path.isabs(self.file):
            raise ValueError("{file: PATH}: PATH must be absolute")
        return self

    def describe(self) -> str:
        if self.env is not None:
            return f"env {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return "config"

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


#: A feed secret: a literal (masked in repr and dumps) or a reference, resolved at fetch time.
Secret = SecretStr | SecretRef

CONFIG_PLACEHOLDER = SecretRef(config=True)


class SecretUnavailable(Exception):
    """A reference that cannot be resolved; the message names the reference, never a value."""


class SecretPolicy:
    """Which environment variables and files feed references may name (``fetch.secret_*``)."""

    def __init__(self, env_patterns: Iterable[str] = ("*",), dirs: Iterable[str | Path] = ("/",)) -> None:
        self.env_patterns = tuple(env_patterns)
        self.dirs = tuple(Path(d).resolve() for d in dirs)

    def resolve(self, secret: Secret, *, environ: Mapping[str, str] | None = None) -> str:
        """The value; raises SecretUnavailable naming the reference (and why) otherwise."""
        if isinstance(secret, SecretStr):
            return secret.get_secret_value()
        env = os.environ if environ is None else environ
        if secret.env is not None:
            name = secret.env
            if not any(fnmatch.fnmatchcase(name, p) for p in self.env_patterns):
                patterns = ", ".join(self.env_patterns) or "none"
                raise SecretUnavailable(f"env {name} is not allowed by fetch.secret_env ({patterns})")
            value = env.get(name)
            if value is None:
                raise SecretUnavailable(f"env {name} is not set")
            return value
        if secret.file is not None:
            return self._read(secret.file)
        raise SecretUnavailable(
            "the value is in the config file of the instance that registered the feed, "
            "and this instance's config has no such feed at that origin"
        )

    def _read(self, name: str) -> str:
        try:
            path = Path(name).resolve(strict=True)
        except OSError as exc:
            raise SecretUnavailable(f"file {name}: {exc.strerror or exc}") from None
        if not any(path.is_relative_to(d) for d in self.dirs):
            dirs = ", ".join(str(d) for d in self.dirs) or "none"
            raise SecretUnavailable(f"file {name} is outside fetch.secret_dirs ({dirs})")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise SecretUnavailable(f"file {name}: {exc.strerror or exc}") from None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise SecretUnavailable(f"file {name} is over {MAX_SECRET_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretUnavailable(f"file {name} is not UTF-8") from None
        return text[:-1] if text.endswith("\n") else text


def _resolve_at_load(value: Any) -> Any:
    """For process-wide secrets (WebSub secret, SASL password): resolved once, at start-up.

    They live only in the operator's config (never on a topic), so any environment variable
    or file may be named; one that cannot be read is a config error, reported at start-up.
    """
    if not isinstance(value, Mapping):
        return value
    try:
        ref = SecretRef.model_validate(value)
        if ref.config:
            raise SecretUnavailable("{config: true} is only for feed definitions")
        return SecretPolicy().resolve(ref)
    except SecretUnavailable as exc:
        raise ValueError(f"secret reference ({exc})") from None


#: A config-only secret: literal, ``{env: NAME}`` or ``{file: PATH}``, a plain str once loaded.
LoadedSecret = Annotated[str, BeforeValidator(_resolve_at_load)]


def stored(secret: Secret) -> dict[str, Any] | str:
    """The form written to the feeds topic: a reference, never a literal."""
    return (CONFIG_PLACEHOLDER if isinstance(secret, SecretStr) else secret).public()


def shown(secret: Secret) -> dict[str, Any] | str:
    """The form printed and logged: references as they are, literals as ``***``."""
    return MASK if isinstance(secret, SecretStr) else secret.public()


def mask_url(url: str) -> str:
    """``https://user:pass@host/x`` as ``https://user:***@host/x``: for logs and messages."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return re.sub(r"//[^/@\s]*@", "//***@", url)
    if parsed.password is None and parsed.raw_user is None:
        return url
    if parsed.password is None:
        return str(parsed)
    return str(parsed.with_password(MASK))


def origin_of(url: str | URL) -> tuple[str, str, int | None]:
    """(scheme, host, port): what configured credentials are bound to (default ports filled in)."""
    parsed = url if isinstance(url, URL) else URL(url)
    return (parsed.scheme.lower(), (parsed.host or "").lower().rstrip("."), parsed.port)
