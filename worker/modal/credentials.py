"""Modal credentials: the token secret that never prints, Modal's config file and its profiles.

Credentials live where Modal keeps them: `~/.modal.toml` (or `MODAL_CONFIG_PATH`), one `[profile]` table per
profile with `token_id`, `token_secret` and `active = true` on the one in use; `MODAL_TOKEN_ID` /
`MODAL_TOKEN_SECRET` in the environment win over the file, key by key, as in Modal. OAuth credentials
(`oauth_refresh_token`, `oauth_client_id`, `oauth_client_secret` or `oauth_jwt_key`; MODAL_OAUTH_*) are read
as modal 1.6 reads them, and so is the profile's `environment`. Modal reads that file once, at import, so every
check here uses an explicit client built from the credentials (and environment) we resolve.
No secret ever appears in a returned string, a log line or an exception message.
No Qt and no `modal` import here.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, NamedTuple

from worker.core.errors import ModalSetupError, exception_line

DEFAULT_PROFILE = "whisper-desk"
DEFAULT_SERVER_URL = "https://api.modal.com,https://api.modal2.com"  # modal.config.DEFAULT_SERVER_URL (1.6)
TOKENS_URL = "https://modal.com/settings/tokens"


def mask_secret(secret: "str | Secret | None") -> str:
    """What is shown instead of a secret: its prefix and stars ("as-****")."""
    value = secret.reveal() if isinstance(secret, Secret) else (secret or "")
    if not value:
        return ""
    return "as-****" if value.startswith("as-") else "****"


class Secret:
    """A token secret that does not print: str(), repr() and f-strings give "as-****"; reveal() gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return mask_secret(self._value)

    __repr__ = __str__

    def __format__(self, _spec: str) -> str:
        return str(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return other._value == self._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a queue, a log record or a database by accident
        raise TypeError("a Secret cannot be pickled")


def plain_secret(secret: "str | Secret | None") -> str | None:
    return secret.reveal() if isinstance(secret, Secret) else secret


_SECRET_PATTERN = re.compile(r"\bas-[A-Za-z0-9_-]{8,}")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def scrub(text: str, *secrets: "str | Secret | None") -> str:
    """`text` with every given secret, and anything shaped like a Modal token secret, masked."""
    for secret in secrets:
        value = plain_secret(secret)
        if value:
            text = text.replace(value, mask_secret(value))
    return _SECRET_PATTERN.sub("as-****", text)


def config_path() -> Path:
    """Where Modal keeps its profiles: MODAL_CONFIG_PATH, else ~/.modal.toml (read fresh on every call)."""
    return Path(os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml"))


def read_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """All profiles in the Modal config file ({} when there is none). Raises ModalSetupError if unreadable."""
    import toml  # what modal itself reads and writes this file with (a dependency of modal)

    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModalSetupError(f"{path}: cannot read the Modal config ({exc.strerror or exc})") from None
    try:
        data = toml.loads(text)
    except Exception as exc:
        reason = scrub(exception_line(exc))
        raise ModalSetupError(f"{path}: not a valid Modal config ({reason}); fix or delete it, then run the setup wizard") from None
    if not all(isinstance(value, dict) for value in data.values()):
        raise ModalSetupError(f"{path}: not a valid Modal config (every entry must be a [profile] table)")
    return data


def active_profile(profiles: dict[str, dict[str, Any]] | None = None) -> str:
    """The profile Whisper Desk uses: MODAL_PROFILE, else the one the setup wizard saved for it (app_profile),
    else the one marked `active = true` (the modal CLI's), else "default"."""
    if os.environ.get("MODAL_PROFILE"):
        return os.environ["MODAL_PROFILE"]
    profiles = read_profiles() if profiles is None else profiles
    chosen = app_profile()
    if chosen and chosen in profiles:
        return chosen
    for name, values in profiles.items():
        if values.get("active", False) is True:
            return name
    return "default"


def app_profile_path() -> Path:
    """Where Whisper Desk remembers the Modal profile it uses (one line), so that the wizard need not make it
    the modal CLI's active profile."""
    from platformdirs import user_config_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_config_dir(APP_DIRS_NAME, appauthor=False)) / "modal-profile"


def app_profile() -> str | None:
    """The Modal profile Whisper Desk uses when MODAL_PROFILE is not set (None: modal's active one)."""
    try:
        name = app_profile_path().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError:  # unreadable: modal's active profile serves
        return None
    return name if name and validate_profile_name(name) is None else None


def other_active_profile(profile: str) -> str | None:
    """The modal CLI's active profile when it is not `profile` (None: none, or that one)."""
    try:
        profiles = read_profiles()
    except ModalSetupError:
        return None
    return next((name for name, values in profiles.items() if values.get("active") is True and name != profile), None)


def set_app_profile(profile: str) -> None:
    """Whisper Desk uses `profile` from now on, whichever profile the modal CLI has active."""
    reason = validate_profile_name(profile)
    if reason:
        raise ModalSetupError(f"profile not chosen: {reason}")
    atomic_write_private(app_profile_path(), profile + "\n")


class OAuth(NamedTuple):
    """OAuth client credentials, as modal 1.6 accepts them (MODAL_OAUTH_* or a profile's oauth_* keys):
    a refresh token and a client id, with exactly one of a client secret or a JWT key."""

    refresh_token: Secret
    client_id: str
    client_secret: Secret | None = None
    jwt_key: Secret | None = None


class Credentials(NamedTuple):
    token_id: str  # "" for OAuth credentials
    token_secret: Secret
    source: str  # "environment", "profile NAME" or "environment + profile NAME"
    oauth: OAuth | None = None

    @property
    def who(self) -> str:
        """What the credentials are called in a message: the token id, or the OAuth client id."""
        return f"OAuth client {self.oauth.client_id}" if self.oauth is not None else f"token {self.token_id}"

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret in these credentials (to scrub from any text shown)."""
        found = [self.token_secret]
        if self.oauth is not None:
            found += [s for s in (self.oauth.refresh_token, self.oauth.client_secret, self.oauth.jwt_key) if s]
        return tuple(s for s in found if s)


_TOKEN_KEYS = ("token_id", "token_secret")
_OAUTH_KEYS = ("oauth_refresh_token", "oauth_client_id", "oauth_client_secret", "oauth_jwt_key")


def resolve_credentials(profile: str | None = None) -> Credentials | None:
    """The credentials Modal would use (with `profile`: as if MODAL_PROFILE were set to it), or None.
    As modal 1.6 reads them: each setting is MODAL_<KEY> from the environment, else the profile's key; a token
    (id and secret) or OAuth (refresh token, client id, and a client secret or a JWT key), never both.
    Raises ModalSetupError for an unreadable config file, or for credentials modal would refuse."""
    keys = _TOKEN_KEYS + _OAUTH_KEYS
    from_env = {key: os.environ.get(f"MODAL_{key.upper()}") or None for key in keys}
    entry: dict[str, Any] = {}
    if not all(from_env[key] for key in _TOKEN_KEYS):
        profiles = read_profiles()
        profile = profile or active_profile(profiles)
        entry = profiles.get(profile, {})
    values = {key: from_env[key] or (str(entry[key]) if entry.get(key) else None) for key in keys}
    used = [key for key in keys if values[key]]
    sources = []
    if any(from_env[key] for key in used):
        sources.append("environment")
    if any(not from_env[key] for key in used):
        sources.append(f"profile {profile}")
    source = " + ".join(sources)
    has_token = bool(values["token_id"] or values["token_secret"])
    has_oauth = any(values[key] for key in _OAUTH_KEYS)
    if has_token and has_oauth:
        raise ModalSetupError(
            f"both a Modal token and OAuth credentials are set ({source}); modal refuses that: keep one of them"
        )
    if has_oauth:
        if not values["oauth_refresh_token"] or not values["oauth_client_id"] or (
            bool(values["oauth_client_secret"]) == bool(values["oauth_jwt_key"])
        ):
            raise ModalSetupError(
                f"the Modal OAuth credentials ({source}) need a refresh token, a client id and exactly one of "
                "a client secret or a JWT key"
            )
        oauth = OAuth(
            Secret(values["oauth_refresh_token"]),
            values["oauth_client_id"],
            Secret(values["oauth_client_secret"]) if values["oauth_client_secret"] else None,
            Secret(values["oauth_jwt_key"]) if values["oauth_jwt_key"] else None,
        )
        return Credentials("", Secret(""), source, oauth)
    if not values["token_id"] or not values["token_secret"]:
        return None
    return Credentials(str(values["token_id"]), Secret(str(values["token_secret"])), source)


def resolve_environment(profile: str | None = None) -> str | None:
    """The Modal environment deploys, checks and jobs use: MODAL_ENVIRONMENT, else the profile's
    `environment`, else None (the workspace's default). Read fresh on every call, as modal reads it only at
    import."""
    if os.environ.get("MODAL_ENVIRONMENT"):
        return os.environ["MODAL_ENVIRONMENT"]
    try:
        profiles = read_profiles()
    except ModalSetupError:
        return None
    value = profiles.get(profile or active_profile(profiles), {}).get("environment")
    return str(value) if value else None


def has_credentials() -> bool:
    try:
        return resolve_credentials() is not None
    except ModalSetupError:
        return False


def env_credentials_set() -> bool:
    """True when MODAL_TOKEN_ID/MODAL_TOKEN_SECRET (or MODAL_OAUTH_*) are set: they win over any saved profile."""
    return any(os.environ.get(f"MODAL_{key.upper()}") for key in _TOKEN_KEYS + _OAUTH_KEYS)


def resolve_server_url(profile: str | None = None) -> str:
    """MODAL_SERVER_URL, else the profile's `server_url`, else Modal's default (as modal.config does)."""
    if os.environ.get("MODAL_SERVER_URL"):
        return os.environ["MODAL_SERVER_URL"]
    try:
        profiles = read_profiles()
    except ModalSetupError:
        profiles = {}
    entry = profiles.get(profile or active_profile(profiles), {})
    return str(entry.get("server_url") or DEFAULT_SERVER_URL)


_TOKEN_ID = re.compile(r"^ak-[A-Za-z0-9_-]{8,128}$")
_TOKEN_SECRET = re.compile(r"^as-[A-Za-z0-9_-]{8,128}$")
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_token_shape(token_id: str, token_secret: "str | Secret") -> str | None:
    """None when both look like a Modal token; otherwise one line saying what is wrong (never the secret)."""
    token_id = (token_id or "").strip()
    secret = (plain_secret(token_secret) or "").strip()
    if not token_id:
        return "enter the Token ID (it starts with ak-)"
    if token_id.startswith("as-"):
        return "the Token ID field holds a secret (as-…): put the Token ID (ak-…) there"
    if not token_id.startswith("ak-"):
        return "the Token ID must start with ak-"
    if not _TOKEN_ID.match(token_id):
        return "the Token ID must be ak- followed by at least 8 letters or digits, with no spaces"
    if not secret:
        return "enter the Token Secret (it starts with as-)"
    if secret.startswith("ak-"):
        return "the Token Secret field holds a Token ID (ak-…): put the secret (as-…) there"
    if not secret.startswith("as-"):
        return "the Token Secret must start with as-"
    if not _TOKEN_SECRET.match(secret):
        return "the Token Secret must be as- followed by at least 8 letters or digits, with no spaces"
    return None


def validate_profile_name(profile: str) -> str | None:
    if not _PROFILE.match(profile or ""):
        return "the profile name must be letters, digits, '-', '_' or '.', starting with a letter or digit"
    return None


def atomic_write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 so that readers see the old file or the new one, never a part."""
    target = Path(os.path.realpath(path))  # keep a symlinked ~/.modal.toml a symlink
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_token(
    token_id: str,
    token_secret: "str | Secret",
    profile: str = "default",
    activate: bool | None = True,
    server_url: str | None = None,
    path: Path | None = None,
) -> Path:
    """Save a token as a Modal profile (mode 0600, atomic), keeping the other profiles. Returns the path.

    With `activate`, this profile gets `active = true` and the others lose theirs (as `modal token set`
    does); a first profile is always activated; None activates it only when no other profile is active (the
    user's active profile is theirs: the setup wizard never switches it). `server_url` is stored only when
    given (a non-default server).
    """
    import toml

    token_id = token_id.strip()
    secret = (plain_secret(token_secret) or "").strip()
    reason = validate_token_shape(token_id, secret) or validate_profile_name(profile)
    if reason:
        raise ModalSetupError(f"token not saved: {reason}")
    path = path or config_path()
    profiles = read_profiles(path)  # a broken file is reported, never overwritten
    entry = dict(profiles.get(profile, {}))
    entry.update(token_id=token_id, token_secret=secret)
    if server_url:
        entry["server_url"] = server_url
    profiles[profile] = entry
    if activate is None:
        activate = not any(values.get("active") is True for name, values in profiles.items() if name != profile)
    if activate or len(profiles) == 1:
        for values in profiles.values():
            values.pop("active", None)
        entry["active"] = True
    atomic_write_private(path, toml.dumps(profiles))
    return path
