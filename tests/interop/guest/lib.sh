# Helpers every guest script sources (busybox sh): checks and their tally, and finding
# the block device of the subsystem $NQN. run-guest copies this file into the guest as
# /harness/files/lib.sh (tests/interop/kernel_guest.py adds it to every run).
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "CHECK-PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "CHECK-FAIL: $*"; }
check() { # check "what" command...
    what=$1; shift
    if "$@" > /tmp/check.out 2>&1; then pass "$what"; else cat /tmp/check.out; fail "$what"; fi
}
finish() {
    echo "CHECKS passed=$PASSED failed=$FAILED"
    [ "$FAILED" -eq 0 ]
    exit $?
}

# The namespace block device of $NQN (multipath head: /dev/nvme<subsys>n1), or "".
find_dev() {
    for b in /sys/block/nvme*n*; do
        [ -e "$b" ] || continue
        case ${b##*/} in nvme*c*) continue ;; esac
        [ "$(cat "$(dirname "$(readlink -f "$b")")/subsysnqn" 2>/dev/null)" = "$NQN" ] || continue
        echo "/dev/${b##*/}"
        return
    done
}
wait_dev() { # sets DEV
    i=0
    DEV=$(find_dev)
    while [ -z "$DEV" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); DEV=$(find_dev); done
    [ -n "$DEV" ]
}
wait_gone() {
    i=0
    while [ -n "$(find_dev)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -z "$(find_dev)" ]
}
disconnect() {
    nvme disconnect -n "$NQN" && wait_gone
}
