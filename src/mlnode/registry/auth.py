"""Registry authentication: ``WWW-Authenticate`` challenges and docker's ``config.json``.

The token flow of the distribution spec: a request answered ``401`` with
``WWW-Authenticate: Bearer realm="…",service="…",scope="…"`` is repeated with a token
fetched from ``realm`` (``GET ?service=…&scope=…``, with HTTP basic credentials if we have
some). ``Basic realm="…"`` challenges get the credentials directly.

Credentials come from docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``; the path is injectable): ``auths.<host>.auth`` (base64
``user:password``) or ``username``/``password``, and ``identitytoken`` (an OAuth2 refresh
token, exchanged with ``grant_type=refresh_token``). Docker Hub's key is
``https://index.docker.io/v1/``. Credential helpers (``credsStore``/``credHelpers``) are
not run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlnode.errors import InputError
from mlnode.registry.reference import DOCKER_HUB, DOCKER_HUB_API

__all__ = [
    "Challenge",
    "Credentials",
    "credentials_for",
    "default_docker_config_path",
    "load_docker_config",
    "parse_www_authenticate",
]

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; ``scheme`` is lower case."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse ``Bearer realm="https://a/token",service="reg",scope="repository:x:pull"``.

    Several challenges in one header (``Basic realm="x", Bearer realm="y"``) are all
    returned in order. Quoted values are unescaped; parameter names are lower-cased.
    """
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        m = _TOKEN.match(value, i)
        if not m:
            break
        token, i = m.group(), m.end()
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and out and not value.startswith("=", j + 1):
            j += 1
            while j < n and value[j] in " \t":
                j += 1
            q = _QUOTED.match(value, j)
            if q:
                raw = re.sub(r"\\(.)", r"\1", q.group(1))
                i = q.end()
            else:
                end = value.find(",", j)
                end = n if end < 0 else end
                raw, i = value[j:end].strip(), end
            out[-1][1][token.lower()] = raw
        elif j < n and value[j] == "=":
            # token68 (e.g. "Basic dXNlcg==") or a stray parameter: skip it
            end = value.find(",", j)
            i = n if end < 0 else end
        else:
            out.append((token.lower(), {}))
    return [Challenge(scheme, params) for scheme, params in out]


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with; ``repr`` hides secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def default_docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _normalise_key(key: str) -> str:
    """``https://host:5000/v1/`` → ``host:5000``; bare keys are kept."""
    if "://" in key:
        return urlsplit(key).netloc or key
    return key.split("/", 1)[0]


def load_docker_config(path: Path | None = None) -> dict[str, Credentials]:
    """Registry host → credentials from a docker ``config.json`` ({} if it does not exist)."""
    p = path or default_docker_config_path()
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=p) from e
    except ValueError as e:
        raise InputError(f"not valid JSON: {e}", path=p) from e
    auths = data.get("auths", {}) if isinstance(data, dict) else {}
    if not isinstance(auths, dict):
        raise InputError("auths: expected an object", path=p)
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        username = str(entry.get("username", "") or "")
        password = str(entry.get("password", "") or "")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                decoded = base64.b64decode(encoded, validate=False).decode()
            except (binascii.Error, UnicodeDecodeError) as e:
                raise InputError(f"auths.{key}.auth: not base64 of user:password", path=p) from e
            if ":" not in decoded:
                raise InputError(f"auths.{key}.auth: not base64 of user:password", path=p)
            username, _, password = decoded.partition(":")
        token = str(entry.get("identitytoken", "") or "")
        if username or password or token:
            out[_normalise_key(str(key))] = Credentials(username, password, token)
    return out


def credentials_for(host: str, config: Mapping[str, Credentials]) -> Credentials | None:
    """Credentials for registry ``host`` (``docker.io`` matches Docker Hub's keys)."""
    if host in config:
        return config[host]
    if host in _DOCKER_HUB_KEYS:
        for key in _DOCKER_HUB_KEYS:
            found = config.get(_normalise_key(key))
            if found is not None:
                return found
    return None
