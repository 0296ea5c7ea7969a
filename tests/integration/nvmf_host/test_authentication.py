"""Our initiator against our target with DH-HMAC-CHAP: the right secret gets in (one
way and both ways, admin and I/O queues), a wrong or missing one is refused with
`AuthenticationFailed` and leaves nothing connected."""

from __future__ import annotations

import pytest

from mayastor.errors import AuthenticationFailed, ConnectRefused, InvalidArgument
from mayastor.nvmf.auth import ControllerKeys, DhchapSecret, HashId
from mayastor.nvmf.host import Controller
from tests.integration.nvmf_host.conftest import HOSTNQN, Served, options

SECRET = DhchapSecret.generate(32, HashId.SHA256)
CTRL_SECRET = DhchapSecret.generate(48)
WRONG = DhchapSecret.generate(32, HashId.SHA256)


def _guard(served: Served, ctrl: DhchapSecret | None = None) -> None:
    served.target.set_host_keys(served.nqn, {HOSTNQN: ControllerKeys(SECRET, ctrl)})


async def _round_trip(controller: Controller) -> None:
    await controller.connect()
    try:
        assert controller.io_queue_count >= 1
        await controller.write(1, 0, 1, b"\x5a" * 512)
        assert bytes(await controller.read(1, 0, 1, 512)) == b"\x5a" * 512
    finally:
        await controller.close()


async def test_the_right_secret_connects_and_moves_data(served: Served) -> None:
    _guard(served)
    controller = Controller("127.0.0.1", served.port, served.nqn, options(dhchap_secret=SECRET))
    await _round_trip(controller)


async def test_bidirectional_authentication_connects_when_both_secrets_match(
    served: Served,
) -> None:
    _guard(served, CTRL_SECRET)
    opts = options(dhchap_secret=SECRET, dhchap_ctrl_secret=CTRL_SECRET)
    await _round_trip(Controller("127.0.0.1", served.port, served.nqn, opts))


async def test_a_wrong_secret_is_refused(served: Served) -> None:
    _guard(served)
    controller = Controller("127.0.0.1", served.port, served.nqn, options(dhchap_secret=WRONG))
    with pytest.raises(AuthenticationFailed, match="refused our DH-HMAC-CHAP"):
        await controller.connect()
    assert served.target.controllers(served.nqn) == []


async def test_no_secret_is_refused_saying_authentication_is_required(served: Served) -> None:
    _guard(served)
    controller = Controller("127.0.0.1", served.port, served.nqn, options())
    with pytest.raises(AuthenticationFailed, match="requires DH-HMAC-CHAP"):
        await controller.connect()


async def test_a_controller_that_cannot_prove_the_controller_secret_is_refused(
    served: Served,
) -> None:
    _guard(served, DhchapSecret.generate(48))
    opts = options(dhchap_secret=SECRET, dhchap_ctrl_secret=CTRL_SECRET)
    controller = Controller("127.0.0.1", served.port, served.nqn, opts)
    with pytest.raises(AuthenticationFailed, match="did not prove"):
        await controller.connect()
    assert served.target.controllers(served.nqn) == []


async def test_a_controller_secret_for_a_target_that_does_not_authenticate_is_refused(
    served: Served,
) -> None:
    opts = options(dhchap_secret=SECRET, dhchap_ctrl_secret=CTRL_SECRET)
    with pytest.raises(AuthenticationFailed, match="cannot prove"):
        await Controller("127.0.0.1", served.port, served.nqn, opts).connect()


async def test_a_host_secret_alone_still_connects_to_an_open_subsystem(served: Served) -> None:
    opts = options(dhchap_secret=SECRET)
    await _round_trip(Controller("127.0.0.1", served.port, served.nqn, opts))


async def test_authentication_failure_is_a_connect_refusal(served: Served) -> None:
    _guard(served)
    controller = Controller("127.0.0.1", served.port, served.nqn, options(dhchap_secret=WRONG))
    with pytest.raises(ConnectRefused):
        await controller.connect()


def test_a_controller_secret_without_a_host_secret_is_refused_up_front() -> None:
    with pytest.raises(InvalidArgument, match="needs dhchap_secret"):
        options(dhchap_ctrl_secret=CTRL_SECRET)
