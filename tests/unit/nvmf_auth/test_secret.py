"""DHHC-1 secrets: the textual form, its CRC and the transformation with an NQN.

Known values come from nvme-cli 2.3 on this machine:
``nvme gen-dhchap-key -s <000102...> -l N -m M -n nqn.2014-08.org.nvmexpress:uuid:test``
(with -m 1..3 that version prints the secret already transformed with the NQN, which
gives the transformation's known answer too).
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.auth import DhchapSecret, HashId, SecretError

NQN = "nqn.2014-08.org.nvmexpress:uuid:test"
PLAIN_32 = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:"
PLAIN_48 = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:"
TRANSFORMED = {
    HashId.SHA256: "DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:",
    HashId.SHA384: (
        "DHHC-1:02:JzC2BNNCN092uBY9oK1bbG/xrkLudbjqzPRjAtH00YqVJN1+2TpCZUPYxrwS09Qxpo/5Jw==:"
    ),
    HashId.SHA512: (
        "DHHC-1:03:d9FmVEvkZD5WUqUkzVMj3JFzwudZt1EtUNK4zK6+E9Dd42mroGA4ub4Yju0aNPtA"
        "r2w0xZFyCxz8d1Q12rImDko3x34=:"
    ),
}


def test_an_untransformed_secret_formats_as_nvme_cli_prints_it() -> None:
    assert DhchapSecret(bytes(range(32))).format() == PLAIN_32
    assert DhchapSecret(bytes(range(48))).format() == PLAIN_48


def test_a_secret_parses_to_its_key_and_transformation_hash() -> None:
    secret = DhchapSecret.parse(TRANSFORMED[HashId.SHA384])
    assert secret.transform is HashId.SHA384
    assert len(secret.key) == 48
    assert DhchapSecret.parse(PLAIN_32) == DhchapSecret(bytes(range(32)))


def test_the_crc_is_zlib_crc32_little_endian_after_the_key() -> None:
    raw = base64.b64decode(PLAIN_32.split(":")[2])
    assert raw[32:] == (0x91267E8A).to_bytes(4, "little")  # nvme check-dhchap-key: CRC 91267e8a


@pytest.mark.parametrize("hash_id", list(HashId))
def test_transformation_is_hmac_of_nqn_and_fabrics_suffix_as_nvme_cli_computes(
    hash_id: HashId,
) -> None:
    secret = DhchapSecret(bytes(range(hash_id.length)), hash_id)
    assert secret.transformed(NQN) == DhchapSecret.parse(TRANSFORMED[hash_id]).key


def test_an_untransformed_secret_is_used_as_is() -> None:
    assert DhchapSecret(bytes(range(32))).transformed(NQN) == bytes(range(32))


def test_a_secret_without_the_final_colon_is_accepted() -> None:
    assert DhchapSecret.parse(PLAIN_32[:-1]) == DhchapSecret.parse(PLAIN_32)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("DHHC-2:00:" + PLAIN_32[10:], "looks like"),
        ("DHHC-1:04:" + PLAIN_32[10:], "not 00..03"),
        ("DHHC-1:0x:" + PLAIN_32[10:], "two digits"),
        (PLAIN_32.replace("AAEC", "AAED"), "CRC"),
        ("DHHC-1:00:AAECAwQF:", "32, 48 or 64"),
        ("DHHC-1:00:!!!!:", "base64"),
        ("DHHC-1:01:" + PLAIN_48[10:], "transformed with SHA256 is 32 bytes"),
        ("", "looks like"),
    ],
)
def test_a_malformed_secret_is_refused_saying_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(SecretError, match=complaint):
        DhchapSecret.parse(text)


def test_the_repr_does_not_show_the_key() -> None:
    assert "AAEC" not in repr(DhchapSecret.parse(PLAIN_32))
    assert "\\x00\\x01" not in repr(DhchapSecret.parse(PLAIN_32))


@given(st.sampled_from([32, 48, 64]), st.sampled_from([None, *HashId]), st.data())
def test_format_and_parse_round_trip(
    length: int, transform: HashId | None, data: st.DataObject
) -> None:
    if transform is not None:
        length = transform.length
    key = data.draw(st.binary(min_size=length, max_size=length))
    secret = DhchapSecret(key, transform)
    assert DhchapSecret.parse(secret.format()) == secret


@given(st.text())
def test_any_text_parses_or_is_refused_with_secret_error(text: str) -> None:
    try:
        DhchapSecret.parse(text)
    except SecretError:
        pass


def test_generated_secrets_differ_and_round_trip() -> None:
    a, b = DhchapSecret.generate(), DhchapSecret.generate(64, HashId.SHA512)
    assert a.key != b.key[:32]
    assert DhchapSecret.parse(b.format()) == b
