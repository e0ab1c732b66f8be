"""Where the export client's settings come from: the environment, then a config file.

The file is TOML, at ``$VL_CONFIG`` or ``$XDG_CONFIG_HOME/vlanalyze/config.toml``
(``~/.config/vlanalyze/config.toml``)::

    api_key = "..."
    api_secret = "..."
    # token = "..."                        # a ready JWT, instead of key and secret
    # base_url = "http://my-host:2080"     # on-premise

A variable set in the environment wins over the file. Values are returned, never
printed: the caller keeps them out of messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from vlanalyze.errors import ConfigurationError

KEYS = {
    "api_key": "VL_API_KEY",
    "api_secret": "VL_API_SECRET",
    "token": "VL_TOKEN",
    "base_url": "VL_BASE_URL",
}


def config_path(environ: Mapping[str, str]) -> Path | None:
    """The config file named by ``environ`` (it may not exist); None if it names none.

    Only ``environ`` is consulted (``VL_CONFIG``, ``XDG_CONFIG_HOME``, ``HOME``), so a
    caller passing its own mapping gets no file it did not ask for.
    """
    if environ.get("VL_CONFIG"):
        return Path(environ["VL_CONFIG"]).expanduser()
    if environ.get("XDG_CONFIG_HOME"):
        return Path(environ["XDG_CONFIG_HOME"]) / "vlanalyze" / "config.toml"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".config" / "vlanalyze" / "config.toml"
    return None


def settings(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """``api_key``, ``api_secret``, ``token`` and ``base_url``: environment, then file.

    Raises:
        ConfigurationError: the config file cannot be read or is not valid TOML.
    """
    env = os.environ if environ is None else environ
    path = config_path(env)
    from_file = _read(path) if path is not None and path.is_file() else {}
    return {key: env.get(var) or from_file.get(key) for key, var in KEYS.items()}


def _read(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"the config file {path} is not valid TOML ({exc})",
            hint='write it as lines like: api_key = "..."',
        ) from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigurationError(
            f"the config file {path} has unknown settings: {', '.join(unknown)}",
            hint=f"known settings: {', '.join(KEYS)}",
        )
    return {k: str(v) for k, v in data.items()}
