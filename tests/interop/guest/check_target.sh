#!/bin/sh
# Guest half of the kernel-initiator interop test (busybox sh, runs inside run-guest).
#
# Checks an NVMe/TCP target on the host's loopback (10.0.2.2 in the guest) with the
# Linux kernel's nvme-tcp and nvme-cli, in one boot:
#   discovery (allow-list applied), a refused host, id-ctrl / id-ns fields, ext4
#   (mkfs, files with checksums, e2fsck, remount, verify) without digests, the same
#   files read back with header and data digests (-g -G), fio with crc32c verify
#   through the block device, disconnects, no failed I/O (discards included) in the
#   kernel log; last, a connection left open when the
#   guest powers off (the host side checks that its controller is freed).
#
# Parameters (--env K=V), so the same script checks our runner or a real io-engine:
#   TARGET_PORT     the target's port (required)
#   TARGET_NQN      the subsystem to check (required)
#   EXPECT_BLOCKS   namespace size in blocks (NSZE) (required)
#   EXPECT_BSIZE    block size in bytes (512)
#   HOSTNQN         a host NQN on the subsystem's allow-list (required)
#   DENIED_HOSTNQN  a host NQN that is not (optional: skips the refusal checks)
#   EXPECT_MODEL    Identify Controller MN ("Mayastor NVMe controller")
#   TARGET_ADDR     10.0.2.2
#   FIO_SIZE        bytes for each fio verify job (8M); 0 skips fio
#   LEAVE_CONNECTED 1: finish with a connection still open (default 1)
# Output: one "CHECK-PASS: ..." or "CHECK-FAIL: ..." line per check, then
# "CHECKS passed=N failed=M"; the exit status is 0 only when nothing failed.
set -u
ADDR=${TARGET_ADDR:-10.0.2.2}
PORT=${TARGET_PORT:?TARGET_PORT is required}
NQN=${TARGET_NQN:?TARGET_NQN is required}
BLOCKS=${EXPECT_BLOCKS:?EXPECT_BLOCKS is required}
BSIZE=${EXPECT_BSIZE:-512}
HOST=${HOSTNQN:?HOSTNQN is required}
DENIED=${DENIED_HOSTNQN:-}
MODEL=${EXPECT_MODEL:-Mayastor NVMe controller}
FIO_SIZE=${FIO_SIZE:-8M}
LEAVE=${LEAVE_CONNECTED:-1}
MNT=/mnt/target

. /harness/files/lib.sh

connect() { # connect [extra nvme connect options]
    nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$HOST" "$@"
}
field() { # field <nvme id-* output file> <name>: the value after "name :"
    sed -n "s/^$2 *: *//p" "$1" | head -1 | sed 's/ *$//'
}

# ------------------------------------------------------------------ discovery
echo "--- discovery from $ADDR:$PORT"
if nvme discover -t tcp -a "$ADDR" -s "$PORT" --hostnqn "$HOST" > /tmp/disc.txt 2>&1; then
    cat /tmp/disc.txt
    pass "nvme discover"
    grep -q "subnqn: *$NQN\$" /tmp/disc.txt && pass "discovery log lists $NQN" \
        || fail "discovery log lists $NQN"
    grep -q "trsvcid: *$PORT\$" /tmp/disc.txt && pass "discovery entry has trsvcid $PORT" \
        || fail "discovery entry has trsvcid $PORT"
    grep -q "trtype: *tcp" /tmp/disc.txt && grep -q "adrfam: *ipv4" /tmp/disc.txt \
        && pass "discovery entry is tcp/ipv4" || fail "discovery entry is tcp/ipv4"
else
    cat /tmp/disc.txt
    fail "nvme discover"
fi

if [ -n "$DENIED" ]; then
    echo "--- a host that is not on the allow-list"
    nvme discover -t tcp -a "$ADDR" -s "$PORT" --hostnqn "$DENIED" > /tmp/disc2.txt 2>&1
    if grep -q "$NQN" /tmp/disc2.txt; then
        cat /tmp/disc2.txt; fail "discovery hides $NQN from $DENIED"
    else
        pass "discovery hides $NQN from $DENIED"
    fi
    if nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$DENIED" > /tmp/deny.txt 2>&1; then
        cat /tmp/deny.txt; fail "connect as $DENIED is refused"
        nvme disconnect -n "$NQN" > /dev/null 2>&1; wait_gone
    else
        cat /tmp/deny.txt; pass "connect as $DENIED is refused"
    fi
    [ -z "$(find_dev)" ] && pass "no namespace for the refused host" \
        || fail "no namespace for the refused host"
fi

# ------------------------------------------------------------------ no digests: ext4
echo "--- connect without digests"
if connect && wait_dev; then
    pass "connect without digests: $DEV"
else
    fail "connect without digests"; finish
fi
nvme list
nvme id-ctrl "$DEV" > /tmp/idctrl.txt 2>&1 || fail "nvme id-ctrl"
nvme id-ns "$DEV" > /tmp/idns.txt 2>&1 || fail "nvme id-ns"
[ "$(field /tmp/idctrl.txt mn)" = "$MODEL" ] && pass "id-ctrl mn is '$MODEL'" \
    || fail "id-ctrl mn '$(field /tmp/idctrl.txt mn)' is '$MODEL'"
[ "$(field /tmp/idctrl.txt subnqn)" = "$NQN" ] && pass "id-ctrl subnqn" || fail "id-ctrl subnqn"
[ $(($(field /tmp/idctrl.txt nn))) -eq 1 ] && pass "id-ctrl nn is 1" || fail "id-ctrl nn"
MDTS=$(($(field /tmp/idctrl.txt mdts)))
[ "$MDTS" -ge 1 ] && pass "id-ctrl mdts is $MDTS" || fail "id-ctrl mdts $MDTS"
[ $(($(field /tmp/idctrl.txt kas))) -gt 0 ] && pass "id-ctrl kas" || fail "id-ctrl kas"
NSZE=$(($(field /tmp/idns.txt nsze)))
[ "$NSZE" -eq "$BLOCKS" ] && pass "id-ns nsze is $BLOCKS" || fail "id-ns nsze $NSZE is $BLOCKS"
SIZE=$(cat "/sys/block/${DEV#/dev/}/size")
[ $((SIZE * 512)) -eq $((BLOCKS * BSIZE)) ] && pass "block device size" \
    || fail "block device size $((SIZE * 512))"
for p in /sys/block/${DEV#/dev/}/device/../nvme*/ana_state /sys/class/nvme/nvme*/nvme*c*n*/ana_state; do
    [ -e "$p" ] && { echo "ana_state $(cat "$p")"; break; }
done

check "mkfs.ext4" mkfs.ext4 -F -q "$DEV"
mkdir -p $MNT
check "mount" mount -t ext4 "$DEV" $MNT
for i in 1 2 3; do dd if=/dev/urandom of=/tmp/payload$i bs=1M count=$((i * 2)) 2>/dev/null; done
dd if=/dev/urandom of=/tmp/small bs=7 count=3 2>/dev/null
(cd /tmp && sha256sum payload1 payload2 payload3 small) > /tmp/sums
cp /tmp/payload1 /tmp/payload2 /tmp/payload3 /tmp/small /tmp/sums $MNT/
sync
check "umount" umount $MNT
check "e2fsck -fn after writing" e2fsck -fn "$DEV"
echo 3 > /proc/sys/vm/drop_caches
check "mount again" mount -t ext4 "$DEV" $MNT
check "checksums after remount" sh -c "cd $MNT && sha256sum -c sums"
check "umount again" umount $MNT
check "disconnect" disconnect

# ------------------------------------------------------------------ digests
echo "--- connect with header and data digests (-g -G)"
if connect -g -G && wait_dev; then
    pass "connect with digests: $DEV"
    check "mount over digests" mount -t ext4 "$DEV" $MNT
    check "checksums over digests" sh -c "cd $MNT && sha256sum -c sums"
    dd if=/dev/urandom of=/tmp/payload4 bs=1M count=3 2>/dev/null
    (cd /tmp && sha256sum payload4) > /tmp/sums4
    cp /tmp/payload4 /tmp/sums4 $MNT/ && sync
    check "umount over digests" umount $MNT
    check "e2fsck -fn over digests" e2fsck -fn "$DEV"
    echo 3 > /proc/sys/vm/drop_caches
    check "mount over digests again" mount -t ext4 "$DEV" $MNT
    check "new file over digests" sh -c "cd $MNT && sha256sum -c sums4 && sha256sum -c sums"
    umount $MNT
    if [ "$FIO_SIZE" != 0 ]; then
        check "fio 4k random write + crc32c verify over digests" fio --name=digests \
            --filename="$DEV" --rw=randwrite --bs=4k --size="$FIO_SIZE" --offset=32M \
            --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1
    fi
    check "disconnect digests" disconnect
else
    fail "connect with digests"
fi

# ------------------------------------------------------------------ fio, no digests
if [ "$FIO_SIZE" != 0 ] && command -v fio > /dev/null; then
    echo "--- fio with crc32c verify"
    if connect && wait_dev; then
        check "fio 4k random write + crc32c verify" fio --name=rand4k --filename="$DEV" \
            --rw=randwrite --bs=4k --size="$FIO_SIZE" --ioengine=libaio --iodepth=16 \
            --direct=1 --verify=crc32c --do_verify=1
        check "fio 128k sequential write + crc32c verify" fio --name=seq128k \
            --filename="$DEV" --rw=write --bs=128k --size=16M --offset=16M \
            --ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --do_verify=1
        check "fio 1M writes + crc32c verify" fio --name=big --filename="$DEV" \
            --rw=randwrite --bs=1M --size=8M --offset=48M --ioengine=libaio --iodepth=4 \
            --direct=1 --verify=crc32c --do_verify=1
        check "disconnect after fio" disconnect
    else
        fail "connect for fio"
    fi
fi

# ------------------------------------------------------------------ kernel log
echo "--- kernel log (nvme)"
dmesg | grep -iE "nvme|I/O error" | tail -40
if dmesg | grep -qE "I/O error|I/O Cmd|blk_update_request"; then
    fail "no failed I/O in the kernel log"
else
    pass "no failed I/O in the kernel log"
fi

# ------------------------------------------------------------------ left connected
if [ "$LEAVE" = 1 ]; then
    if connect --keep-alive-tmo=5 && wait_dev; then
        CNTLID=$(cat /sys/class/nvme/*/cntlid 2>/dev/null | tail -1)
        pass "connected and left open (cntlid $CNTLID)"
        echo "LEFT-CONNECTED cntlid=$CNTLID"
    else
        fail "connect to leave open"
    fi
fi
finish
