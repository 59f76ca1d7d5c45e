"""Encryption at rest: tokens open only with the right key and associated data, keys come from
DATA_ENCRYPTION_KEY or a private key file, and rotation keeps old data readable."""

from __future__ import annotations

import base64
import logging
import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError
from bot.crypto import (
    ENV_VAR,
    MIN_TOKEN_SIZE,
    DecryptionError,
    KeyConfigError,
    Keyring,
    KeyringHolder,
    KeySource,
    add_current_key,
    check_keyring,
    format_key_id,
    generate_key,
    key_id_for,
    load_keyring,
    remove_keys,
    token_key_id,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
RING = Keyring([KEY_A])
AAD = b"checkin:42"


def encoded(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key_file(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- tokens -------------------------------------------------------------------------------------


@settings(max_examples=150)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=128))
def test_round_trip(plaintext: bytes, aad: bytes) -> None:
    token = RING.encrypt(plaintext, aad=aad)
    assert RING.decrypt(token, aad=aad) == plaintext
    assert len(token) == MIN_TOKEN_SIZE + len(plaintext)
    assert token[0] == 0x01
    assert RING.key_id(token) == token[1:5] == RING.current_id == key_id_for(KEY_A)


@settings(max_examples=50)
@given(plaintext=st.binary(max_size=256), aad=st.binary(max_size=32), data=st.data())
def test_any_flipped_bit_is_refused(plaintext: bytes, aad: bytes, data: st.DataObject) -> None:
    token = bytearray(RING.encrypt(plaintext, aad=aad))
    bit = data.draw(st.integers(0, len(token) * 8 - 1))
    token[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        RING.decrypt(bytes(token), aad=aad)


def test_every_flipped_bit_of_a_short_token_is_refused() -> None:
    token = RING.encrypt(b'{"pain":7}', aad=AAD)
    for bit in range(len(token) * 8):
        tampered = bytearray(token)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecryptionError):
            RING.decrypt(bytes(tampered), aad=AAD)


def test_every_truncation_and_extension_is_refused() -> None:
    token = RING.encrypt(b"slept badly", aad=AAD)
    for size in range(len(token)):
        with pytest.raises(DecryptionError):
            RING.decrypt(token[:size], aad=AAD)
    with pytest.raises(DecryptionError):
        RING.decrypt(token + b"\x00", aad=AAD)


def test_wrong_key_is_refused() -> None:
    token = Keyring([KEY_B]).encrypt(b"mood 3", aad=AAD)
    with pytest.raises(DecryptionError, match=format_key_id(key_id_for(KEY_B))):
        RING.decrypt(token, aad=AAD)


def test_a_key_posing_under_another_keys_id_is_refused() -> None:
    token = bytearray(Keyring([KEY_B]).encrypt(b"mood 3", aad=AAD))
    token[1:5] = RING.current_id
    with pytest.raises(DecryptionError, match="authentication"):
        RING.decrypt(bytes(token), aad=AAD)


def test_wrong_aad_is_refused() -> None:
    token = RING.encrypt(b"pain 8", aad=b"checkin:1")
    for other in (b"checkin:2", b"checkin:10", b"", b"checkin:1\x00"):
        with pytest.raises(DecryptionError):
            RING.decrypt(token, aad=other)


def test_unknown_version_is_refused() -> None:
    token = RING.encrypt(b"pain 8", aad=AAD)
    for version in (0x00, 0x02, 0xFF):
        with pytest.raises(DecryptionError, match="version"):
            RING.decrypt(bytes([version]) + token[1:], aad=AAD)
        with pytest.raises(DecryptionError):
            token_key_id(bytes([version]) + token[1:])


def test_aad_is_required_keyword() -> None:
    with pytest.raises(TypeError):
        RING.encrypt(b"x", b"aad")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RING.encrypt(b"x")  # type: ignore[call-arg]


def test_two_encryptions_differ_and_hide_the_plaintext() -> None:
    plaintext = b"my back hurts and I am very stressed about work " * 3
    first, second = RING.encrypt(plaintext, aad=AAD), RING.encrypt(plaintext, aad=AAD)
    assert first != second
    assert first[5:17] != second[5:17]
    for token in (first, second):
        assert plaintext not in token
        assert b"back hurts" not in token
        assert b"stressed" not in token


def test_json_round_trip_is_compact_utf8() -> None:
    obj = {"pain": 7, "stress": 4, "note": "Rücken 痛い, übel", "sleep": None, "ok": [True]}
    token = RING.encrypt_json(obj, aad=AAD)
    assert RING.decrypt_json(token, aad=AAD) == obj
    raw = RING.decrypt(token, aad=AAD)
    assert b": " not in raw
    assert b", " not in raw.replace(", übel".encode(), b"")
    assert "痛い".encode() in raw
    with pytest.raises(ValueError, match="JSON"):
        RING.encrypt_json({"pain": float("nan")}, aad=AAD)


def test_decrypt_json_of_non_json_raises_without_quoting_it() -> None:
    for plaintext in (b"secret note", b"\xff\xfe"):
        token = RING.encrypt(plaintext, aad=AAD)
        with pytest.raises(DecryptionError) as caught:
            RING.decrypt_json(token, aad=AAD)
        assert "secret" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__


def test_keyring_is_an_ordered_set_and_never_shows_keys() -> None:
    ring = Keyring([KEY_B, KEY_A, KEY_B])
    assert len(ring) == 2
    assert ring.current_id == key_id_for(KEY_B)
    assert ring.ordered_ids == (key_id_for(KEY_B), key_id_for(KEY_A))
    assert ring.ids == frozenset({key_id_for(KEY_A), key_id_for(KEY_B)})
    shown = repr(ring) + str(ring)
    assert format_key_id(key_id_for(KEY_B)) in shown
    for key in (KEY_A, KEY_B):
        assert encoded(key) not in shown
        assert key.hex() not in shown
        assert repr(key) not in shown


def test_keyring_refuses_bad_keys() -> None:
    with pytest.raises(KeyConfigError, match="no key"):
        Keyring([])
    with pytest.raises(KeyConfigError, match="16 bytes"):
        Keyring([KEY_A, bytes(16)])


def test_distinct_keys_with_the_same_id_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.crypto.key_id_for", lambda key: b"\x00\x00\x00\x00")
    with pytest.raises(KeyConfigError, match="share the id 00000000"):
        Keyring([KEY_A, KEY_B])
    with pytest.raises(KeyConfigError, match=f"^{ENV_VAR}: .*share the id"):
        load_keyring(f"{encoded(KEY_A)},{encoded(KEY_B)}", tmp_path / "k")


def test_reencrypt_moves_tokens_to_the_current_key() -> None:
    old_token = RING.encrypt(b"pain 2", aad=AAD)
    rotated = Keyring([KEY_B, KEY_A])
    moved = rotated.reencrypt(old_token, aad=AAD)
    assert rotated.key_id(moved) == key_id_for(KEY_B)
    assert Keyring([KEY_B]).decrypt(moved, aad=AAD) == b"pain 2"
    assert rotated.reencrypt(moved, aad=AAD) is moved
    with pytest.raises(DecryptionError):
        rotated.reencrypt(moved, aad=b"checkin:43")
    with pytest.raises(DecryptionError):
        rotated.reencrypt(old_token, aad=b"checkin:43")


def test_generate_key_is_random_urlsafe_32_bytes() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.urlsafe_b64decode(key)) == 32
        assert "+" not in key
        assert "/" not in key


# --- DATA_ENCRYPTION_KEY ------------------------------------------------------------------------


def test_env_with_two_keys_reads_both_and_writes_with_the_first(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    ring, source = load_keyring(f" {encoded(KEY_B)} , {encoded(KEY_A)}\n", key_file)
    assert source is KeySource.ENV
    assert not key_file.exists()
    from_a = Keyring([KEY_A]).encrypt(b"a", aad=AAD)
    from_b = Keyring([KEY_B]).encrypt(b"b", aad=AAD)
    assert ring.decrypt(from_a, aad=AAD) == b"a"
    assert ring.decrypt(from_b, aad=AAD) == b"b"
    assert ring.key_id(ring.encrypt(b"new", aad=AAD)) == key_id_for(KEY_B)


def test_env_accepts_keys_without_padding_and_standard_base64(tmp_path: Path) -> None:
    key = bytes([0xFB] * 32)  # '+' and '/' in standard base64, '-' and '_' in urlsafe
    unpadded = encoded(key).rstrip("=")
    standard = base64.b64encode(key).decode()
    for value in (unpadded, standard, encoded(key) + ","):
        ring, _ = load_keyring(value, tmp_path / "k")
        assert ring.current_id == key_id_for(key)


@pytest.mark.parametrize("value", ["   ", ""])
def test_blank_env_means_unset(tmp_path: Path, value: str) -> None:
    _, source = load_keyring(value, tmp_path / "k")
    assert source is KeySource.CREATED


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64!", "key 1 is not urlsafe base64"),
        (encoded(KEY_A) + ",abc$", "key 2 is not urlsafe base64"),
        (encoded(bytes(16)), "key 1 is 16 bytes"),
        (encoded(bytes(64)), "key 1 is 64 bytes"),
        (" , ,", "no key"),
        ("a" * 45, "key 1"),
    ],
)
def test_malformed_env_names_the_variable_and_the_fix(
    tmp_path: Path, value: str, problem: str
) -> None:
    with pytest.raises(KeyConfigError) as caught:
        load_keyring(value, tmp_path / "k")
    message = str(caught.value)
    assert message.startswith(f"{ENV_VAR}: ")
    assert problem in message
    assert "python -m bot keys generate" in message
    assert "\n" not in message
    if len(value) > 8:
        assert value not in message  # never echo what may be a key
    assert isinstance(caught.value, ConfigError)
    assert not (tmp_path / "k").exists()


# --- the key file -------------------------------------------------------------------------------


@posix_only
def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "backcalm.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        ring, source = load_keyring(None, key_file)
    finally:
        os.umask(old_umask)
    assert source is KeySource.CREATED
    assert mode_of(key_file) == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["backcalm.key"]  # no temp left
    lines = key_file.read_text().splitlines()
    assert len(lines) == 1
    assert len(base64.urlsafe_b64decode(lines[0])) == 32
    token = ring.encrypt(b"pain 5", aad=AAD)

    again, source = load_keyring(None, key_file)
    assert source is KeySource.FILE
    assert again.ids == ring.ids
    assert again.decrypt(token, aad=AAD) == b"pain 5"


@posix_only
def test_key_file_is_created_even_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    key_file = tmp_path / "backcalm.key"
    ring, source = load_keyring(None, key_file)
    assert source is KeySource.CREATED
    assert mode_of(key_file) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["backcalm.key"]
    assert load_keyring(None, key_file)[0].ids == ring.ids


def test_key_file_made_by_another_process_at_the_same_moment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "backcalm.key"

    def other_process_first(src: object, dst: object) -> None:
        write_key_file(key_file, encoded(KEY_B) + "\n")
        raise FileExistsError(17, "File exists")

    monkeypatch.setattr(os, "link", other_process_first)
    ring, source = load_keyring(None, key_file)
    assert source is KeySource.FILE
    assert ring.ordered_ids == (key_id_for(KEY_B),)
    assert [p.name for p in tmp_path.iterdir()] == ["backcalm.key"]


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "backcalm.key"
    load_keyring(None, key_file)
    key_file.chmod(mode)
    with pytest.raises(KeyConfigError) as caught:
        load_keyring(None, key_file)
    message = str(caught.value)
    assert str(key_file) in message
    assert f"{mode:04o}" in message
    assert "chmod 600" in message
    assert key_file.read_text().strip() not in message
    with pytest.raises(KeyConfigError):
        add_current_key(key_file)


def test_key_file_ignores_blank_lines_and_comments(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(
        key_file,
        f"# BackCalm keys, current first\n\n{encoded(KEY_B)}  # 2025\r\n"
        f"\n# old\n{encoded(KEY_A)}\n",
    )
    ring, source = load_keyring(None, key_file)
    assert source is KeySource.FILE
    assert ring.ordered_ids == (key_id_for(KEY_B), key_id_for(KEY_A))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# only a comment\n\n", "no key"),
        ("", "no key"),
        (f"{encoded(KEY_A)}\nnot a key\n", "line 2 is not urlsafe base64"),
        (encoded(bytes(31)) + "\n", "line 1 is 31 bytes"),
    ],
)
def test_malformed_key_file_is_refused_and_left_alone(
    tmp_path: Path, text: str, problem: str
) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, text)
    with pytest.raises(KeyConfigError, match=problem) as caught:
        load_keyring(None, key_file)
    assert str(key_file) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert key_file.read_text() == text  # never replaced by a new key: that would orphan data


def test_key_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    key_file.write_bytes(b"\xff\xfe\x00")
    key_file.chmod(0o600)
    with pytest.raises(KeyConfigError, match="not text"):
        load_keyring(None, key_file)


def test_key_file_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match=str(tmp_path)):
        load_keyring(None, tmp_path)


def test_key_file_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")
    with pytest.raises(KeyConfigError, match="cannot create") as caught:
        load_keyring(None, tmp_path / "data" / "backcalm.key")
    assert ENV_VAR in str(caught.value)
    assert "\n" not in str(caught.value)


# --- rotation -----------------------------------------------------------------------------------


@posix_only
def test_rotation_keeps_old_keys_readable_then_drops_them(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, f"# keys\n{encoded(KEY_A)}\n")
    old_ring, _ = load_keyring(None, key_file)
    old_token = old_ring.encrypt(b"pain 6", aad=AAD)

    new_id = add_current_key(key_file)
    assert mode_of(key_file) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["backcalm.key"]
    ring, _ = load_keyring(None, key_file)
    assert format_key_id(ring.current_id) == new_id
    assert ring.ordered_ids[1:] == (key_id_for(KEY_A),)
    assert key_file.read_text().splitlines()[1:] == ["# keys", encoded(KEY_A)]
    assert ring.decrypt(old_token, aad=AAD) == b"pain 6"

    # the re-encryption loop: every token moves to the current key, then the old key goes
    new_token = ring.reencrypt(old_token, aad=AAD)
    assert remove_keys(key_file, keep={ring.key_id(new_token)}) == 1
    final, _ = load_keyring(None, key_file)
    assert final.ordered_ids == (ring.current_id,)
    assert final.decrypt(new_token, aad=AAD) == b"pain 6"
    with pytest.raises(DecryptionError):
        final.decrypt(old_token, aad=AAD)
    lines = key_file.read_text().splitlines()
    assert len(lines) == 2
    assert lines[1] == "# keys"  # comments survive rotation
    assert mode_of(key_file) == 0o600


def test_remove_keys_never_removes_the_current_key(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, f"{encoded(KEY_B)}\n{encoded(KEY_A)}\n")
    assert remove_keys(key_file, keep=set()) == 1
    assert load_keyring(None, key_file)[0].ordered_ids == (key_id_for(KEY_B),)
    before = key_file.stat().st_ino
    assert remove_keys(key_file, keep={key_id_for(KEY_A)}) == 0
    assert key_file.stat().st_ino == before  # nothing to do: the file is not rewritten


def test_remove_keys_keeps_what_is_in_use(tmp_path: Path) -> None:
    key_c = bytes(range(64, 96))
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, "\n".join(encoded(k) for k in (key_c, KEY_B, KEY_A)) + "\n")
    assert remove_keys(key_file, keep=[key_id_for(KEY_A)]) == 1
    ring, _ = load_keyring(None, key_file)
    assert ring.ordered_ids == (key_id_for(key_c), key_id_for(KEY_A))


def test_rotation_helpers_refuse_a_missing_or_broken_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(KeyConfigError, match="cannot open"):
        add_current_key(missing)
    with pytest.raises(KeyConfigError, match="cannot open"):
        remove_keys(missing, keep=())
    assert not missing.exists()
    broken = tmp_path / "broken.key"
    write_key_file(broken, "garbage\n")
    with pytest.raises(KeyConfigError):
        add_current_key(broken)
    assert broken.read_text() == "garbage\n"


def test_failed_atomic_write_leaves_the_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, encoded(KEY_A) + "\n")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        add_current_key(key_file)
    assert key_file.read_text() == encoded(KEY_A) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["backcalm.key"]


# --- the holder ---------------------------------------------------------------------------------


def test_holder_picks_up_a_rotated_file_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "backcalm.key"
    clock = Clock()
    holder, source = KeyringHolder.load(None, key_file, clock=clock)
    assert source is KeySource.CREATED
    first = holder.get()
    old_token = first.encrypt(b"stress 9", aad=AAD)

    new_id = add_current_key(key_file)
    clock.now += 0.5
    assert holder.get() is first  # too soon to look

    stats = 0
    real_stat = os.stat

    def counting_stat(*args: object, **kwargs: object) -> os.stat_result:
        nonlocal stats
        stats += 1
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(100):
        holder.get()
    assert stats == 0

    clock.now += 0.5
    rotated = holder.get()
    assert format_key_id(rotated.current_id) == new_id
    assert rotated.decrypt(old_token, aad=AAD) == b"stress 9"
    assert stats == 1

    clock.now += 5
    assert holder.get() is rotated  # unchanged file: a stat, no read
    assert stats == 2


def test_holder_keeps_the_last_good_keyring_when_the_file_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, encoded(KEY_A) + "\n")
    clock = Clock()
    holder, source = KeyringHolder.load(None, key_file, clock=clock)
    assert source is KeySource.FILE
    good = holder.get()

    broken = "half a key\n"
    write_key_file(key_file, broken)
    os.utime(key_file, ns=(1, 1))
    clock.now += 2
    with caplog.at_level(logging.WARNING, logger="bot.crypto"):
        assert holder.get() is good
        clock.now += 2
        assert holder.get() is good
    assert len(caplog.records) == 1  # reported once, not every second
    assert "line 1" in caplog.text
    assert encoded(KEY_A) not in caplog.text

    key_file.unlink()
    clock.now += 2
    assert holder.get() is good

    write_key_file(key_file, f"{encoded(KEY_B)}\n{encoded(KEY_A)}\n")
    clock.now += 2
    assert holder.get().ordered_ids == (key_id_for(KEY_B), key_id_for(KEY_A))
    for key in (KEY_A, KEY_B):
        assert encoded(key) not in caplog.text


def test_holder_with_env_keys_never_touches_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    clock = Clock()
    holder, source = KeyringHolder.load(encoded(KEY_A), key_file, clock=clock)
    assert source is KeySource.ENV
    assert holder.key_file is None
    write_key_file(key_file, encoded(KEY_B) + "\n")
    clock.now += 10
    assert holder.get().ordered_ids == (key_id_for(KEY_A),)
    assert holder.refresh() is False


def test_holder_refresh_checks_now(tmp_path: Path) -> None:
    key_file = tmp_path / "backcalm.key"
    write_key_file(key_file, encoded(KEY_A) + "\n")
    ring, _ = load_keyring(None, key_file)
    holder = KeyringHolder(ring, key_file)
    assert holder.refresh() is False
    add_current_key(key_file)
    assert holder.refresh() is True
    assert len(holder.get()) == 2


# --- start-up check -----------------------------------------------------------------------------


def test_check_keyring_catches_data_under_a_missing_key() -> None:
    ring = Keyring([KEY_B, KEY_A])
    check_keyring(ring, [])
    check_keyring(ring, [key_id_for(KEY_A), key_id_for(KEY_B), key_id_for(KEY_A)])
    lost = bytes(range(100, 132))
    with pytest.raises(KeyConfigError) as caught:
        check_keyring(Keyring([KEY_B]), iter([key_id_for(KEY_A), key_id_for(lost)]))
    message = str(caught.value)
    assert message.startswith(
        "the database holds data encrypted with a key that is not configured: "
    )
    assert format_key_id(key_id_for(KEY_A)) in message
    assert format_key_id(key_id_for(lost)) in message
    assert format_key_id(key_id_for(KEY_B)) in message  # what is configured, for comparison
    assert ENV_VAR in message
    assert "\n" not in message


def test_module_does_not_import_telegram() -> None:
    import bot.crypto

    source = Path(bot.crypto.__file__).read_text()
    assert "import telegram" not in source
    assert "from telegram" not in source
    assert "bot.crypto" in sys.modules
