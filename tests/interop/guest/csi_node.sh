#!/bin/sh
# Guest half of the CSI node plugin test (busybox sh, runs inside run-guest).
#
# Starts the test's agent (csi_agent.py, with the host's Python shared over 9p) and
# waits until the host tells it to stop: meanwhile the host starts and kills the node
# plugin, calls it through the agent's relay to the plugin's unix socket, and runs
# commands here (writes, checksums, the mount table, sysfs). Afterwards: what is left
# mounted or connected, for the host to check.
#
# Parameters (--env K=V): PYTHON (the interpreter), AGENT_PORT, RELAYS (PORT=SOCKET
# words), PYLIB (its libraries; LD_LIBRARY_PATH).
set -u
. /harness/files/lib.sh
export LD_LIBRARY_PATH=${PYLIB:?PYLIB is required}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONDONTWRITEBYTECODE=1
mkdir -p /var/lib/kubelet/plugins/io.openebs.csi-mayastor /var/lib/kubelet/pods
relays=""
for r in ${RELAYS:-}; do relays="$relays --relay $r"; done
# shellcheck disable=SC2086
if "${PYTHON:?PYTHON is required}" /harness/files/csi_agent.py --port "${AGENT_PORT:?}" $relays; then
    pass "the agent ran until the host stopped it"
else
    fail "the agent ran until the host stopped it"
fi
echo "--- left mounted under /var/lib/kubelet"
grep /var/lib/kubelet /proc/self/mountinfo
echo "LEFT-MOUNTS=$(grep -c /var/lib/kubelet /proc/self/mountinfo)"
echo "--- left connected"
ls /sys/class/nvme-subsystem/ 2>/dev/null
echo "LEFT-SUBSYSTEMS=$(ls /sys/class/nvme-subsystem/ 2>/dev/null | wc -l)"
echo "--- kernel log (nvme, file systems)"
dmesg | grep -iE "nvme|I/O error|EXT4|XFS|BTRFS" | tail -60
finish
