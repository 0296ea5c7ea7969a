"""StorageClass parameters: Mayastor's names, checked and carried to the node."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.csi._parameters import KNOWN, NvmeSettings, VolumeParameters
from mayastor.csi.errors import InvalidArgument


def test_no_parameters_give_one_thick_ext4_replica() -> None:
    params = VolumeParameters.parse({})
    assert (params.replicas, params.thin, params.fs_type) == (1, False, "ext4")
    assert params.topology() is None
    assert params.nvme == NvmeSettings()


def test_every_parameter_is_read() -> None:
    params = VolumeParameters.parse(
        {
            "repl": "3",
            "protocol": "nvmf",
            "fsType": "xfs",
            "thin": "true",
            "nvmeIoTimeout": "30s",
            "nvmeNrIoQueues": "2",
            "nvmeCtrlLossTmo": "-1",
            "nvmeKeepAliveTmo": "1m",
            "poolAffinityTopologyLabel": "tier: fast\nrack: r1\n",
            "nodeAffinityTopologyLabel": "zone: us-west-1",
            "nodeHasTopologyKey": "rack\n",
            "stsAffinityGroup": "true",
            "csi.storage.k8s.io/pvc/name": "data-db-0",
            "csi.storage.k8s.io/pvc/namespace": "shop",
        }
    )
    assert params.replicas == 3
    assert params.fs_type == "xfs"
    assert params.thin is True
    assert params.nvme == NvmeSettings(
        io_timeout=30, nr_io_queues=2, ctrl_loss_tmo=-1, keep_alive_tmo=60
    )
    assert params.topology() == {
        "node_topology": {"labelled": {"inclusion": {"rack": "", "zone": "us-west-1"}}},
        "pool_topology": {"labelled": {"inclusion": {"tier": "fast", "rack": "r1"}}},
    }
    assert params.affinity_group == "shop/data-db"


def test_the_volume_context_carries_what_the_node_needs() -> None:
    context = VolumeParameters.parse(
        {"fsType": "btrfs", "nvmeIoTimeout": "2m", "csi.storage.k8s.io/pvc/name": "x"}
    ).volume_context()
    assert context["fsType"] == "btrfs"
    assert context["nvmeIoTimeout"] == "120"
    assert context["protocol"] == "nvmf"
    assert "csi.storage.k8s.io/pvc/name" not in context


def test_the_nvme_settings_read_back_from_a_context_they_wrote() -> None:
    settings = NvmeSettings(io_timeout=45, nr_io_queues=4, ctrl_loss_tmo=600, keep_alive_tmo=5)
    assert NvmeSettings.from_context(settings.context()) == settings


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(
            lambda k: k not in KNOWN and not k.startswith("csi.storage.k8s.io/")
        ),
        st.text(max_size=8),
        min_size=1,
        max_size=3,
    )
)
def test_unknown_parameters_are_invalid_argument_naming_each(extra: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as refused:
        VolumeParameters.parse(extra)
    for key in extra:
        assert key in refused.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repl", "0"),
        ("repl", "256"),
        ("repl", "2.5"),
        ("protocol", "nbd"),
        ("fsType", "ext3"),
        ("thin", "yes please"),
        ("nvmeIoTimeout", "0"),
        ("nvmeIoTimeout", "10 seconds"),
        ("nvmeNrIoQueues", "0"),
        ("nvmeCtrlLossTmo", "-2"),
        ("nvmeKeepAliveTmo", "-1"),
        ("poolAffinityTopologyLabel", ""),
        ("poolAffinityTopologyLabel", "tier=fast"),
        ("nodeAffinityTopologyLabel", "zone:"),
        ("nodeHasTopologyKey", "a key"),
        ("stsAffinityGroup", "true"),
    ],
)
def test_a_malformed_value_is_invalid_argument_naming_its_parameter(key: str, value: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        VolumeParameters.parse({key: value})
    assert key in refused.value.message


def test_a_claim_that_is_no_statefulsets_has_no_affinity_group() -> None:
    with pytest.raises(InvalidArgument, match="StatefulSet"):
        VolumeParameters.parse(
            {
                "stsAffinityGroup": "true",
                "csi.storage.k8s.io/pvc/name": "data",
                "csi.storage.k8s.io/pvc/namespace": "shop",
            }
        )


def test_sts_affinity_group_false_asks_for_nothing() -> None:
    assert VolumeParameters.parse({"stsAffinityGroup": "false"}).affinity_group is None
