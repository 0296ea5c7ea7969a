"""The io-engine's record of DH-HMAC-CHAP secrets: what a request may carry, and the
file that keeps them across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayastor.api.v1 import common_pb2
from mayastor.engine.host_secrets import ShareSecrets, host_keys_from
from mayastor.errors import InvalidArgument
from mayastor.nvmf.auth import ControllerKeys, DhchapSecret, HashId

HOST = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000a11c"
SUB = "nqn.2019-05.io.openebs:replica"
SECRET = DhchapSecret(bytes(range(32)), HashId.SHA256)
CTRL = DhchapSecret(bytes(range(48)))


def _message(
    host: str = HOST, secret: str = SECRET.format(), ctrl: str = ""
) -> common_pb2.HostSecret:
    return common_pb2.HostSecret(host_nqn=host, secret=secret, ctrl_secret=ctrl)


def test_request_secrets_become_controller_keys() -> None:
    keys = host_keys_from([_message(ctrl=CTRL.format())])
    assert keys == {HOST: ControllerKeys(SECRET, CTRL)}


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([_message(host="")], "needs its host NQN"),
        ([_message(), _message()], "two secrets"),
        ([_message(secret="DHHC-1:00:AAAA:")], f"secret of host {HOST}"),
        ([_message(ctrl="nonsense")], f"secret of host {HOST}"),
    ],
)
def test_bad_request_secrets_are_refused(
    messages: list[common_pb2.HostSecret], complaint: str
) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        host_keys_from(messages)


def test_secrets_written_to_the_file_are_read_back_by_the_next_instance(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.json"
    ShareSecrets(path).set(SUB, {HOST: ControllerKeys(SECRET, CTRL)})
    assert ShareSecrets(path).keys(SUB) == {HOST: ControllerKeys(SECRET, CTRL)}
    assert path.stat().st_mode & 0o077 == 0


def test_forgetting_the_last_secrets_of_a_share_removes_them_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    secrets = ShareSecrets(path)
    secrets.set(SUB, {HOST: ControllerKeys(SECRET)})
    secrets.forget(SUB)
    assert ShareSecrets(path).keys(SUB) == {}


def test_an_unreadable_file_is_refused_saying_which(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text('{"nqn": {"host": {"secret": "DHHC-1:00:xx:"}}}')
    with pytest.raises(InvalidArgument, match=r"secrets\.json"):
        ShareSecrets(path)


def test_without_a_file_secrets_live_in_memory_only() -> None:
    secrets = ShareSecrets()
    secrets.set(SUB, {HOST: ControllerKeys(SECRET)})
    assert secrets.keys(SUB) == {HOST: ControllerKeys(SECRET)}
