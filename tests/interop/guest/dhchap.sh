# Guest half of test_kernel_authentication.py (busybox sh, a kernel with
# CONFIG_NVME_HOST_AUTH): nvme connect with DH-HMAC-CHAP secrets to a replica that
# `mayastor` shares with them. The right secret, one-way and both ways, connects and
# moves data; a wrong host secret, none, or a wrong controller secret is refused.
# Then, for each "port:nqn:hash:dhgroup" of $MORE_TARGETS (io-engines that allow only
# that hash and group), a bidirectional connect that the kernel reports with them.
# Env: TARGET_PORT, TARGET_NQN, HOSTNQN, SECRET, CTRL_SECRET, WRONG_SECRET, MORE_TARGETS.
. /harness/files/lib.sh
ADDR=10.0.2.2
PORT=$TARGET_PORT
NQN=$TARGET_NQN

connect() { # connect [extra nvme connect options]
    nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --hostnqn "$HOSTNQN" "$@"
}
refused() { # refused "what" [options]: the connect fails and no namespace appears
    what=$1; shift
    if connect "$@" > /tmp/refused.out 2>&1; then
        cat /tmp/refused.out; fail "$what"; disconnect > /dev/null 2>&1
    elif [ -n "$(find_dev)" ]; then
        fail "$what (a namespace appeared)"
    else
        cat /tmp/refused.out; pass "$what"
    fi
}
round_trip() { # write 1 MiB of random data at 1 MiB and read it back
    dd if=/dev/urandom of=/tmp/out bs=64k count=16 2> /dev/null &&
    dd if=/tmp/out of="$DEV" bs=64k seek=16 oflag=direct conv=fsync 2> /dev/null &&
    dd if="$DEV" of=/tmp/in bs=64k skip=16 count=16 iflag=direct 2> /dev/null &&
    cmp /tmp/out /tmp/in
}

uname -r
check "connect with the host secret" connect --dhchap-secret "$SECRET"
check "namespace appears after one-way authentication" wait_dev
check "data round trip over the authenticated connection" round_trip
check "kernel says qid 0 authenticated" sh -c 'dmesg | grep -q "qid 0: authenticated"'
check "disconnect after one-way" disconnect

dmesg -c > /dev/null
check "connect with host and controller secrets" \
    connect --dhchap-secret "$SECRET" --dhchap-ctrl-secret "$CTRL_SECRET"
check "namespace appears after bidirectional authentication" wait_dev
check "data round trip over the bidirectional connection" round_trip
check "kernel says the controller authenticated" \
    sh -c 'dmesg | grep -q "qid 0: controller authenticated"'
check "disconnect after bidirectional" disconnect

refused "a wrong host secret is refused" --dhchap-secret "$WRONG_SECRET"
refused "no secret is refused"
refused "a wrong controller secret is refused" \
    --dhchap-secret "$SECRET" --dhchap-ctrl-secret "$WRONG_SECRET"
for target in $MORE_TARGETS; do
    IFS=: read -r PORT p2 p3 HASH GROUP <<EOF2
$target
EOF2
    NQN=$p2:$p3
    dmesg -c > /dev/null
    check "$HASH/$GROUP: connect with both secrets" connect --nr-io-queues=1 \
        --dhchap-secret "$SECRET" --dhchap-ctrl-secret "$CTRL_SECRET"
    check "$HASH/$GROUP: namespace appears" wait_dev
    check "$HASH/$GROUP: data round trip" round_trip
    check "$HASH/$GROUP: kernel used hmac($HASH) and $GROUP" \
        sh -c "dmesg | grep -q 'authenticated with hash hmac($HASH) dhgroup $GROUP'"
    check "$HASH/$GROUP: disconnect" disconnect
done
dmesg | grep -i -e nvme -e auth | tail -20
finish
