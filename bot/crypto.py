"""Encryption at rest for health data: AES-256-GCM under a keyring kept apart from the database.

A token (what the database stores) is::

    version (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes)

The key id is the first 4 bytes of SHA-256(key), so whoever holds the keyring finds the key that
opens a token, and old keys keep working after a rotation. The caller's associated data (e.g.
``b"checkin:" + user_id``) and the 5-byte header are authenticated with the ciphertext, so a
token moved to another row, or with an edited header, fails to decrypt instead of returning
garbage.

Keys come from DATA_ENCRYPTION_KEY (comma-separated, first is current) or, when that is unset,
from a key file next to the database (one key per line, first is current), created 0600 on first
start. Nothing here logs or formats key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.config import ConfigError

__all__ = [
    "ENV_VAR",
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "VERSION",
    "DecryptionError",
    "KeyConfigError",
    "KeySource",
    "Keyring",
    "KeyringHolder",
    "add_current_key",
    "check_keyring",
    "format_key_id",
    "generate_key",
    "key_id_for",
    "load_keyring",
    "remove_keys",
    "token_key_id",
]

logger = logging.getLogger(__name__)

VERSION = 0x01
KEY_SIZE = 32
KEY_ID_SIZE = 4
NONCE_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = 1 + KEY_ID_SIZE
MIN_TOKEN_SIZE = HEADER_SIZE + NONCE_SIZE + TAG_SIZE

ENV_VAR = "DATA_ENCRYPTION_KEY"
GENERATE_HINT = "generate one with `python -m bot keys generate`"
FILE_MODE = 0o600
RELOAD_INTERVAL_SECONDS = 1.0


class KeyConfigError(ConfigError):
    """Keys are missing, malformed or unsafe; the message is one line for the operator."""


class DecryptionError(Exception):
    """A token cannot be opened: wrong or unknown key, tampered, truncated, wrong associated
    data or unknown version. The message never contains key material or plaintext."""


class KeySource(enum.Enum):
    """Where `load_keyring` found the keys."""

    ENV = "env"
    """DATA_ENCRYPTION_KEY."""
    FILE = "file"
    """An existing key file."""
    CREATED = "created"
    """A key file created just now with a new key: the caller should warn that it lives next to
    the database and must be backed up separately."""


def key_id_for(key: bytes) -> bytes:
    """The 4-byte id of a key: the first bytes of its SHA-256."""
    return hashlib.sha256(key).digest()[:KEY_ID_SIZE]


def format_key_id(key_id: bytes) -> str:
    """A key id as 8 hex digits, safe to log and show to operators."""
    return key_id.hex()


def generate_key() -> str:
    """A new random key as urlsafe base64 (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_SIZE)).decode("ascii")


def token_key_id(token: bytes) -> bytes:
    """The id of the key that encrypted `token`; DecryptionError if it is no token at all."""
    if len(token) < MIN_TOKEN_SIZE:
        raise DecryptionError(
            f"token is {len(token)} bytes, shorter than the {MIN_TOKEN_SIZE} of an empty message"
        )
    if token[0] != VERSION:
        raise DecryptionError(f"token has unknown format version {token[0]}")
    return bytes(token[1:HEADER_SIZE])


class Keyring:
    """An ordered set of 32-byte keys: the first encrypts, every one decrypts.

    Immutable; a rotated key file gives a new Keyring (see `KeyringHolder`).
    """

    __slots__ = ("_ciphers", "_current", "_order")

    def __init__(self, keys: Iterable[bytes]) -> None:
        ciphers: dict[bytes, AESGCM] = {}
        seen: dict[bytes, bytes] = {}
        order: list[bytes] = []
        for position, key in enumerate(keys, start=1):
            if len(key) != KEY_SIZE:
                raise KeyConfigError(
                    f"key {position} is {len(key)} bytes, a key must be {KEY_SIZE} bytes"
                )
            key = bytes(key)
            key_id = key_id_for(key)
            if key_id in seen:
                if seen[key_id] != key:  # 2**-32 per pair; never ambiguous about which key
                    raise KeyConfigError(
                        f"keys share the id {format_key_id(key_id)}; replace one with a new key"
                    )
                continue  # the same key twice: an ordered set keeps the first
            seen[key_id] = key
            ciphers[key_id] = AESGCM(key)
            order.append(key_id)
        if not order:
            raise KeyConfigError(f"no key; {GENERATE_HINT}")
        self._ciphers = ciphers
        self._order = tuple(order)
        self._current = order[0]

    def __repr__(self) -> str:
        return f"Keyring(ids=[{', '.join(format_key_id(i) for i in self._order)}])"

    def __len__(self) -> int:
        return len(self._order)

    @property
    def current_id(self) -> bytes:
        """The id of the key that encrypts."""
        return self._current

    @property
    def ids(self) -> frozenset[bytes]:
        """The ids of every key that decrypts."""
        return frozenset(self._order)

    @property
    def ordered_ids(self) -> tuple[bytes, ...]:
        """The key ids, current first."""
        return self._order

    @staticmethod
    def key_id(token: bytes) -> bytes:
        """The id of the key that encrypted `token` (it may not be in this keyring)."""
        return token_key_id(token)

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """Encrypt under the current key with a fresh random nonce, binding `aad`."""
        header = bytes((VERSION,)) + self._current
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext, header + aad)
        return header + nonce + sealed

    def decrypt(self, token: bytes, *, aad: bytes) -> bytes:
        """The plaintext of `token`, or DecryptionError; never unauthenticated bytes."""
        key_id = token_key_id(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"token was encrypted with key id {format_key_id(key_id)}, which is not configured"
            )
        nonce = token[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]
        try:
            return cipher.decrypt(
                nonce, token[HEADER_SIZE + NONCE_SIZE :], token[:HEADER_SIZE] + aad
            )
        except InvalidTag:
            raise DecryptionError(
                "token failed authentication: tampered, truncated, or for other associated data"
            ) from None

    def reencrypt(self, token: bytes, *, aad: bytes) -> bytes:
        """`token` under the current key: unchanged if it already is, else decrypted and
        encrypted again (for the rotation loop)."""
        if token_key_id(token) == self._current:
            self.decrypt(token, aad=aad)  # still prove it opens, so rotation never spreads junk
            return token
        return self.encrypt(self.decrypt(token, aad=aad), aad=aad)

    def encrypt_json(self, obj: Any, *, aad: bytes) -> bytes:
        """Encrypt `obj` as compact UTF-8 JSON (ValueError for NaN/infinity)."""
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return self.encrypt(text.encode("utf-8"), aad=aad)

    def decrypt_json(self, token: bytes, *, aad: bytes) -> Any:
        """The JSON value encrypted by `encrypt_json`, or DecryptionError."""
        plaintext = self.decrypt(token, aad=aad)
        try:
            return json.loads(plaintext.decode("utf-8"))
        except ValueError:  # JSON and Unicode errors; neither is chained, both quote plaintext
            raise DecryptionError("decrypted data is not UTF-8 JSON") from None


def check_keyring(keyring: Keyring, ids_in_use: Iterable[bytes]) -> None:
    """KeyConfigError if data in the database was encrypted with a key the keyring lacks."""
    missing = sorted(format_key_id(i) for i in set(ids_in_use) - keyring.ids)
    if missing:
        configured = ", ".join(format_key_id(i) for i in keyring.ordered_ids)
        raise KeyConfigError(
            "the database holds data encrypted with a key that is not configured: key id "
            f"{', '.join(missing)} (configured: {configured}). Set {ENV_VAR} or restore the key "
            "file that holds it; a new key cannot open old data."
        )


# --- parsing ------------------------------------------------------------------------------------


def _decode_key(text: str) -> bytes:
    """A key from urlsafe (or standard) base64, padding optional; ValueError with the reason."""
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not urlsafe base64") from None
    if len(key) != KEY_SIZE:
        raise ValueError(f"is {len(key)} bytes, a key must be {KEY_SIZE}")
    return key


def _keyring_from_env(value: str) -> Keyring:
    parts = [part.strip() for part in value.split(",")]
    entries = [part for part in parts if part]
    fix = f"Use one or more keys separated by commas, current first; {GENERATE_HINT}."
    if not entries:
        raise KeyConfigError(f"{ENV_VAR}: no key in the value. {fix}")
    keys = []
    for number, entry in enumerate(entries, start=1):
        try:
            keys.append(_decode_key(entry))
        except ValueError as exc:
            raise KeyConfigError(f"{ENV_VAR}: key {number} {exc}. {fix}") from None
    try:
        return Keyring(keys)
    except KeyConfigError as exc:
        raise KeyConfigError(f"{ENV_VAR}: {exc}. {fix}") from None


@dataclass(frozen=True, slots=True)
class _KeyLine:
    """One line of a key file; `key` is None for blank and comment lines."""

    text: str
    key: bytes | None


def _parse_key_file(path: Path, text: str) -> list[_KeyLine]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].strip()  # base64 has no '#'
        if not content:
            lines.append(_KeyLine(raw, None))
            continue
        try:
            lines.append(_KeyLine(raw, _decode_key(content)))
        except ValueError as exc:
            raise KeyConfigError(
                f"key file {path}: line {number} {exc}. Each line holds one key; {GENERATE_HINT}."
            ) from None
    return lines


def _keys_of(lines: Iterable[_KeyLine]) -> list[bytes]:
    return [line.key for line in lines if line.key is not None]


# --- the key file -------------------------------------------------------------------------------

_Signature = tuple[int, int, int, int]
"""(device, inode, size, mtime in ns): changes whenever the key file is replaced or edited."""


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_key_file(path: Path) -> tuple[list[_KeyLine], _Signature]:
    """The parsed lines and the identity of exactly the file read; KeyConfigError if it is
    unreadable, readable by group or others, or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyConfigError(f"key file {path}: cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyConfigError(f"key file {path}: not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise KeyConfigError(
                f"key file {path}: readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`"
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError as exc:
        raise KeyConfigError(f"key file {path}: cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise KeyConfigError(f"key file {path}: not text; {GENERATE_HINT}") from None
    return _parse_key_file(path, text), _signature(st)


def _keyring_from_lines(path: Path, lines: list[_KeyLine]) -> Keyring:
    try:
        return Keyring(_keys_of(lines))
    except KeyConfigError as exc:
        raise KeyConfigError(
            f"key file {path}: {exc}. Restore it from a backup, or if nothing was ever encrypted, "
            "delete it to have a new one made"
        ) from None


def _fsync_dir(folder: Path) -> None:
    """Make a new or replaced directory entry durable; best effort where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (O_EXCL, mode 0600 from the first instant), write `data`, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: a 0600 temp file in the same folder, fsync, os.replace."""
    temp = _temp_path(path)
    try:
        _write_new(temp, text.encode("utf-8"))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def _create_key_file(path: Path) -> bool:
    """Create `path` holding one new key, complete or not at all. False if another process
    created it first (then it is read like any existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (generate_key() + "\n").encode("ascii")
    temp = _temp_path(path)
    try:
        _write_new(temp, data)
        try:
            os.link(temp, path)  # atomic create-if-absent of a complete file
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: create in place, still O_EXCL
            try:
                _write_new(path, data)
            except FileExistsError:
                return False
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    _fsync_dir(path.parent)
    return True


def _load_file(key_file: Path) -> tuple[Keyring, KeySource, _Signature]:
    source = KeySource.FILE
    if not os.path.lexists(key_file):  # a dangling symlink is an error, not a fresh start
        try:
            if _create_key_file(key_file):
                source = KeySource.CREATED
        except OSError as exc:
            raise KeyConfigError(
                f"key file {key_file}: cannot create it ({exc.strerror}); make its folder "
                f"writable or set {ENV_VAR} ({GENERATE_HINT})"
            ) from None
    lines, signature = _read_key_file(key_file)
    return _keyring_from_lines(key_file, lines), source, signature


def load_keyring(env_value: str | None, key_file: Path) -> tuple[Keyring, KeySource]:
    """The keyring from DATA_ENCRYPTION_KEY when it is set (blank counts as unset), else from
    `key_file`, which is created with one new key, mode 0600, when missing.

    KeyConfigError (one line, naming the variable or file and the fix) when the keys are
    malformed, the key file is readable by group or others, or it cannot be read or created.
    """
    if env_value is not None and env_value.strip():
        return _keyring_from_env(env_value), KeySource.ENV
    keyring, source, _ = _load_file(key_file)
    return keyring, source


def add_current_key(key_file: Path) -> str:
    """Put a new key first in `key_file`, keeping the old ones (and comments) after it, and
    return the new key's id as hex. The file is replaced atomically, mode 0600."""
    lines, _ = _read_key_file(key_file)
    _keyring_from_lines(key_file, lines)  # refuse to rotate a file that does not load
    key = secrets.token_bytes(KEY_SIZE)
    encoded = base64.urlsafe_b64encode(key).decode("ascii")
    _write_atomic(key_file, encoded + "\n" + "".join(line.text + "\n" for line in lines))
    return format_key_id(key_id_for(key))


def remove_keys(key_file: Path, keep: Collection[bytes]) -> int:
    """Drop from `key_file` every key whose id is not in `keep`, except the current (first) one,
    and return how many lines were dropped. Comments stay. The file is replaced atomically."""
    lines, _ = _read_key_file(key_file)
    keyring = _keyring_from_lines(key_file, lines)
    kept = []
    for line in lines:
        if line.key is not None:
            key_id = key_id_for(line.key)
            if key_id != keyring.current_id and key_id not in keep:
                continue
        kept.append(line)
    removed = len(lines) - len(kept)
    if removed:
        _write_atomic(key_file, "".join(line.text + "\n" for line in kept))
    return removed


class KeyringHolder:
    """The live keyring of a running bot: re-reads the key file when it changes, so a rotation
    needs no restart. `get()` costs at most one os.stat per `interval` seconds.

    A key file that has become unreadable or malformed is reported once (no key material) and
    the last good keyring stays in use until the file changes again.
    """

    def __init__(
        self,
        keyring: Keyring,
        key_file: Path | None = None,
        *,
        interval: float = RELOAD_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keyring = keyring
        self._key_file = key_file
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = clock()
        self._signature = self._stat()

    @classmethod
    def load(
        cls,
        env_value: str | None,
        key_file: Path,
        *,
        interval: float = RELOAD_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> tuple[KeyringHolder, KeySource]:
        """`load_keyring`, held: keys from DATA_ENCRYPTION_KEY never reload, a key file does."""
        if env_value is not None and env_value.strip():
            keyring = _keyring_from_env(env_value)
            return cls(keyring, None, interval=interval, clock=clock), KeySource.ENV
        keyring, source, signature = _load_file(key_file)
        holder = cls(keyring, key_file, interval=interval, clock=clock)
        holder._signature = signature  # exactly the file read, however recently it changed
        return holder, source

    @property
    def key_file(self) -> Path | None:
        return self._key_file

    def get(self) -> Keyring:
        """The current keyring, re-read first if the key file changed."""
        if self._key_file is not None and self._clock() - self._checked_at >= self._interval:
            self.refresh()
        return self._keyring

    def refresh(self) -> bool:
        """Check the key file now; True if a changed file was loaded."""
        if self._key_file is None:
            return False
        with self._lock:
            self._checked_at = self._clock()
            signature = self._stat()
            if signature == self._signature:
                return False
            self._signature = signature  # report a bad file once, retry when it changes again
            if signature is None:
                logger.warning(
                    "key file %s is gone; keeping the keys already loaded", self._key_file
                )
                return False
            try:
                lines, read_signature = _read_key_file(self._key_file)
                keyring = _keyring_from_lines(self._key_file, lines)
            except KeyConfigError as exc:
                logger.warning("%s; keeping the keys already loaded", exc)
                return False
            self._signature = read_signature
            self._keyring = keyring
            logger.info(
                "key file %s reloaded: %d keys, current key id %s",
                self._key_file,
                len(keyring),
                format_key_id(keyring.current_id),
            )
            return True

    def _stat(self) -> _Signature | None:
        if self._key_file is None:
            return None
        try:
            return _signature(os.stat(self._key_file))
        except OSError:
            return None
