#!/bin/sh
# Guest half of the nexus interop test (busybox sh, runs inside run-guest).
#
# The Linux kernel's nvme-tcp initiator on a published nexus, while the host kills one
# of the nexus's remote replicas: connect (a host off the allow-list is refused), mkfs
# ext4, mount, write files of known checksums (each with fsync, so the writes reach the
# nexus now, not at unmount), print KILL_MARKER and go on writing until the host says
# (file ACK_FILE on the 9p share) that the replica's io-engine is dead, write more
# files, sync, unmount, e2fsck -fn, drop caches, mount again, verify every checksum,
# disconnect, and look for failed I/O in the kernel log.
#
# Parameters (--env K=V):
#   TARGET_PORT     the nexus port (required)
#   TARGET_NQN      the nexus NQN (required)
#   HOSTNQN         a host NQN on the nexus's allow-list (required)
#   EXPECT_BLOCKS   namespace size in 512-byte blocks (required)
#   ACK_FILE        a file on a host share that appears once the replica is killed (required)
#   DENIED_HOSTNQN  a host NQN that is not on the allow-list (optional)
#   TARGET_ADDR     10.0.2.2
#   KILL_MARKER     KILL-REPLICA-NOW
#   FILE_MB         size of each file (4)
#   FILES_BEFORE    files written before the marker (3)
#   FILES_AFTER     files written after the acknowledgement (4)
#   MAX_WAIT_FILES  files written while waiting for the acknowledgement, at most (40)
# Output: one "CHECK-PASS: ..." or "CHECK-FAIL: ..." line per check, "FILES-WHILE-KILLING=N",
# then "CHECKS passed=N failed=M"; the exit status is 0 only when nothing failed.
set -u
ADDR=${TARGET_ADDR:-10.0.2.2}
PORT=${TARGET_PORT:?TARGET_PORT is required}
NQN=${TARGET_NQN:?TARGET_NQN is required}
HOST=${HOSTNQN:?HOSTNQN is required}
BLOCKS=${EXPECT_BLOCKS:?EXPECT_BLOCKS is required}
ACK=${ACK_FILE:?ACK_FILE is required}
DENIED=${DENIED_HOSTNQN:-}
MARKER=${KILL_MARKER:-KILL-REPLICA-NOW}
FILE_MB=${FILE_MB:-4}
BEFORE=${FILES_BEFORE:-3}
AFTER=${FILES_AFTER:-4}
MAX_WAIT=${MAX_WAIT_FILES:-40}
MNT=/mnt/nexus
N=0

. /harness/files/lib.sh

# write_file: the next file of FILE_MB random MiB, its checksum kept, fsync'd to the nexus.
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

# ------------------------------------------------------------------ connect
if [ -n "$DENIED" ]; then
    if nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$DENIED" > /tmp/deny.txt 2>&1; then
        cat /tmp/deny.txt; fail "connect to the nexus as $DENIED is refused"
        nvme disconnect -n "$NQN" > /dev/null 2>&1; wait_gone
    else
        cat /tmp/deny.txt; pass "connect to the nexus as $DENIED is refused"
    fi
fi
if nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$HOST" && wait_dev; then
    pass "connect to the nexus as $HOST: $DEV"
else
    fail "connect to the nexus as $HOST"; finish
fi
nvme id-ns "$DEV" > /tmp/idns.txt 2>&1
NSZE=$(($(sed -n 's/^nsze *: *//p' /tmp/idns.txt | head -1)))
[ "$NSZE" -eq "$BLOCKS" ] && pass "id-ns nsze is $BLOCKS" || fail "id-ns nsze $NSZE is $BLOCKS"

# ------------------------------------------------------------------ ext4 and files
check "mkfs.ext4" mkfs.ext4 -F -q "$DEV"
mkdir -p $MNT
check "mount" mount -t ext4 "$DEV" $MNT
: > /tmp/sums
check "files written before the kill" write_files "$BEFORE"

echo "$MARKER"
W=0
WRITE_OK=1
while [ ! -e "$ACK" ] && [ $W -lt "$MAX_WAIT" ]; do
    write_file || { WRITE_OK=0; break; }
    W=$((W + 1))
done
echo "FILES-WHILE-KILLING=$W"
[ -e "$ACK" ] && pass "the host killed the replica while files were being written" \
    || fail "the host killed the replica while files were being written"
[ $WRITE_OK = 1 ] && pass "files written while the replica was killed" \
    || fail "files written while the replica was killed"
check "files written after the kill" write_files "$AFTER"
cp /tmp/sums "$MNT/sums"
check "sync after the kill" sync
echo "files: $N of $FILE_MB MiB"
check "umount" umount $MNT

# ------------------------------------------------------------------ verify
check "e2fsck -fn after the kill" e2fsck -fn "$DEV"
echo 3 > /proc/sys/vm/drop_caches
check "mount again" mount -t ext4 "$DEV" $MNT
check "every file's checksum verifies after remount" sh -c "cd $MNT && sha256sum -c sums"
[ $(($(wc -l < $MNT/sums))) -eq "$N" ] && pass "the checksum list holds all $N files" \
    || fail "the checksum list holds all $N files"
check "umount again" umount $MNT
check "disconnect" disconnect

echo "--- kernel log (nvme)"
dmesg | grep -iE "nvme|I/O error|EXT4" | tail -40
if dmesg | grep -qE "I/O error|I/O Cmd|blk_update_request|EXT4-fs error"; then
    fail "no failed I/O in the kernel log"
else
    pass "no failed I/O in the kernel log"
fi
finish
