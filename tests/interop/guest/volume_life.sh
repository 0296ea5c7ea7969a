#!/bin/sh
# Guest half of the volume-life interop test (busybox sh, runs inside run-guest).
#
# The Linux kernel's nvme-tcp initiator on a volume the control plane manages. The host
# does each control-plane step through kubectl-mayastor and REST when the guest prints a
# step marker, and answers by writing STEP.env on the 9p share (KEY=VALUE lines, e.g.
# the target's new PORT). The guest: a host NQN the volume was not published to is
# refused; the frontend's NQN connects; mkfs.ext4, files of known checksums; disconnect
# (STEP-MOVE: the host unpublishes and publishes on another node); connect to the new
# target, every file verifies; (STEP-EXPAND: the host grows the volume) the namespace
# grows while mounted and resize2fs takes it online; more files; (STEP-SCALE: the host
# scales 3 -> 2 -> 3, the new replica rebuilt) more files; umount, e2fsck -fn, mount,
# verify every file, disconnect.
#
# Parameters (--env K=V):
#   TARGET_PORT, TARGET_NQN, HOSTNQN, DENIED_HOSTNQN, EXPECT_BLOCKS   (required)
#   SHARE        the host share with the STEP.env answers (required)
#   TARGET_ADDR  10.0.2.2
#   FILE_MB      size of each file (4)
# Output: "CHECK-PASS: ..." / "CHECK-FAIL: ..." lines, "STEP-..." markers, then
# "CHECKS passed=N failed=M"; the exit status is 0 only when nothing failed.
set -u
ADDR=${TARGET_ADDR:-10.0.2.2}
PORT=${TARGET_PORT:?TARGET_PORT is required}
NQN=${TARGET_NQN:?TARGET_NQN is required}
HOST=${HOSTNQN:?HOSTNQN is required}
DENIED=${DENIED_HOSTNQN:?DENIED_HOSTNQN is required}
BLOCKS=${EXPECT_BLOCKS:?EXPECT_BLOCKS is required}
SHARE=${SHARE:?SHARE is required}
FILE_MB=${FILE_MB:-4}
MNT=/mnt/volume
N=0

. /harness/files/lib.sh
connect() {
    nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$HOST" && wait_dev
}
step() { # step NAME: print the marker, wait for the host's answer, read it
    echo "STEP-$1"
    i=0
    while [ ! -e "$SHARE/$1.env" ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i + 1)); done
    if [ -e "$SHARE/$1.env" ]; then
        . "$SHARE/$1.env"
        pass "the host did step $1"
    else
        fail "the host did step $1"
        finish
    fi
}
write_file() {
    N=$((N + 1))
    dd if=/dev/urandom of=/tmp/payload bs=1M count="$FILE_MB" 2>/dev/null || return 1
    (cd /tmp && sha256sum payload) | sed "s/payload\$/file$N/" >> /tmp/sums
    dd if=/tmp/payload of="$MNT/file$N" bs=1M conv=fsync 2>/dev/null
}
write_files() { # write_files COUNT
    k=0
    while [ $k -lt "$1" ]; do write_file || return 1; k=$((k + 1)); done
}
verify() {
    cp /tmp/sums "$MNT/sums.now" && (cd $MNT && sha256sum -c sums.now)
}
dev_blocks() {
    cat "/sys/block/${DEV##*/}/size"
}

# ------------------------------------------------------------------ publish on the first node
if nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$DENIED" > /tmp/deny.txt 2>&1; then
    cat /tmp/deny.txt; fail "a host the volume was not published to is refused"
    nvme disconnect -n "$NQN" > /dev/null 2>&1; wait_gone
else
    cat /tmp/deny.txt; pass "a host the volume was not published to is refused"
fi
if connect; then pass "the frontend connects to the volume: $DEV"; else fail "the frontend connects"; finish; fi
[ "$(dev_blocks)" -eq "$BLOCKS" ] && pass "the volume has $BLOCKS blocks" \
    || fail "the volume has $BLOCKS blocks (found $(dev_blocks))"
check "mkfs.ext4" mkfs.ext4 -F -q "$DEV"
mkdir -p $MNT
: > /tmp/sums
check "mount" mount -t ext4 "$DEV" $MNT
check "files written on the first target" write_files 4
check "umount before the move" umount $MNT
check "disconnect before the move" disconnect

# ------------------------------------------------------------------ target moved
step MOVE
if connect; then pass "the frontend connects to the moved target on port $PORT"; else fail "connect to the moved target"; finish; fi
check "mount on the moved target" mount -t ext4 "$DEV" $MNT
check "every file verifies on the moved target" verify

# ------------------------------------------------------------------ expand while mounted
step EXPAND
i=0
while [ "$(dev_blocks)" -lt "$GROWN_BLOCKS" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(dev_blocks)" -lt "$GROWN_BLOCKS" ]; then
    echo "the namespace-changed notice did not resize the disk yet: nvme ns-rescan"
    nvme ns-rescan "/dev/$(echo "${DEV##*/}" | sed 's/n[0-9]*$//')"
    sleep 1
fi
[ "$(dev_blocks)" -eq "$GROWN_BLOCKS" ] && pass "the disk grew to $GROWN_BLOCKS blocks" \
    || fail "the disk grew to $GROWN_BLOCKS blocks (found $(dev_blocks))"
check "resize2fs online" resize2fs "$DEV"
check "files written after the expansion" write_files 4

# ------------------------------------------------------------------ scale 3 -> 2 -> 3
step SCALE
check "files written after scaling" write_files 2
check "sync" sync
check "umount" umount $MNT
check "e2fsck -fn" e2fsck -fn "$DEV"
echo 3 > /proc/sys/vm/drop_caches
check "mount again" mount -t ext4 "$DEV" $MNT
check "every file verifies at the end" verify
[ $(($(wc -l < /tmp/sums))) -eq "$N" ] && pass "all $N files were checked" || fail "all $N files were checked"
check "umount at the end" umount $MNT
check "disconnect at the end" disconnect

echo "--- kernel log (nvme)"
dmesg | grep -iE "nvme|I/O error|EXT4" | tail -40
if dmesg | grep -qE "I/O error|blk_update_request|EXT4-fs error"; then
    fail "no failed I/O in the kernel log"
else
    pass "no failed I/O in the kernel log"
fi
finish
