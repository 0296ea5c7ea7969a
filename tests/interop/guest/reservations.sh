#!/bin/sh
# Guest half of the reservation interop test (busybox sh, runs inside run-guest).
#
# NVMe reservations with nvme-cli and the Linux kernel's nvme-tcp against a replica
# shared by `mayastor`: the same subsystem connected twice, as two hosts (two host
# NQNs and host identifiers, --hostnqn/--hostid), each reached through its own
# controller character device so that every command goes out as that host.
#   ONCS and RESCAP; host A registers and acquires Exclusive Access; resv-report with
#   --eds lists it, and without --eds it is refused (Host Identifier Inconsistent
#   Format); host B's reads and writes get Reservation Conflict while A's go through;
#   B's acquire conflicts, its preempt takes the reservation and A is refused then;
#   B releases (everyone may do I/O again) and clears (no registrant left).
#
# Parameters (--env K=V):
#   TARGET_PORT, TARGET_NQN     the replica's subsystem (required)
#   HOSTNQN_A, HOSTID_A         the first host (required)
#   HOSTNQN_B, HOSTID_B         the second host (required)
#   TARGET_ADDR                 10.0.2.2
# Output: "CHECK-PASS: ..." / "CHECK-FAIL: ..." lines, then "CHECKS passed=N failed=M".
set -u
ADDR=${TARGET_ADDR:-10.0.2.2}
PORT=${TARGET_PORT:?TARGET_PORT is required}
NQN=${TARGET_NQN:?TARGET_NQN is required}
HOST_A=${HOSTNQN_A:?HOSTNQN_A is required}
HOST_B=${HOSTNQN_B:?HOSTNQN_B is required}
ID_A=${HOSTID_A:?HOSTID_A is required}
ID_B=${HOSTID_B:?HOSTID_B is required}

. /harness/files/lib.sh

# The controller character device of $NQN connected as host NQN $1, or "".
ctrl_of() {
    for c in /sys/class/nvme/nvme*; do
        [ -e "$c/subsysnqn" ] || continue
        [ "$(cat "$c/subsysnqn")" = "$NQN" ] || continue
        [ "$(cat "$c/hostnqn" 2>/dev/null)" = "$1" ] || continue
        echo "/dev/${c##*/}"
        return
    done
}
wait_ctrl() { # wait_ctrl HOSTNQN: prints the device once it is there
    i=0
    dev=$(ctrl_of "$1")
    while [ -z "$dev" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); dev=$(ctrl_of "$1"); done
    echo "$dev"
}
# run "what" command...: the command's output in /tmp/out, its status returned
run() {
    what=$1; shift
    echo "--- $what: $*"
    "$@" > /tmp/out 2>&1
    status=$?
    cat /tmp/out
    return $status
}
ok() { # ok "what" command...: the command succeeds
    what=$1
    if run "$@"; then pass "$what"; else fail "$what"; fi
}
conflicts() { # conflicts "what" command...: the command fails with Reservation Conflict
    what=$1
    if run "$@"; then
        fail "$what (it succeeded)"
    elif grep -qi "reservation.conflict" /tmp/out; then
        pass "$what"
    else
        fail "$what (not a reservation conflict)"
    fi
}
read_as() { # read_as CTRL: one 512-byte read of LBA 0 through that controller
    nvme io-passthru "$1" --namespace-id=1 --opcode=2 --cdw10=0 --cdw11=0 --cdw12=0 \
        --data-len=512 --read
}
write_as() { # write_as CTRL: one 512-byte write of LBA 0 through that controller
    nvme io-passthru "$1" --namespace-id=1 --opcode=1 --cdw10=0 --cdw11=0 --cdw12=0 \
        --data-len=512 --write --input-file=/tmp/block
}
field() { # field NAME: the value after "NAME :" in /tmp/out (nvme-cli's normal output)
    sed -n "s/^ *$1 *: *//p" /tmp/out | head -1 | sed 's/ *$//'
}

dd if=/dev/zero of=/tmp/block bs=512 count=1 2>/dev/null

echo "--- connect as $HOST_A ($ID_A) and as $HOST_B ($ID_B)"
check "connect as host A" nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" \
    --hostnqn "$HOST_A" --hostid "$ID_A"
# nvme-cli 2.3 (libnvme 1.3) takes a second connect to one subsystem port for a
# duplicate whoever the host is ("already connected", --duplicate-connect or not); the
# kernel itself tells hosts apart, so host B connects through /dev/nvme-fabrics.
connect_raw() { # connect_raw HOSTNQN HOSTID
    exec 3<>/dev/nvme-fabrics
    printf 'transport=tcp,traddr=%s,trsvcid=%s,nqn=%s,hostnqn=%s,hostid=%s' \
        "$ADDR" "$PORT" "$NQN" "$1" "$2" >&3
    status=$?
    read -r created <&3
    exec 3>&-
    echo "$created"
    return $status
}
check "connect as host B" connect_raw "$HOST_B" "$ID_B"
CA=$(wait_ctrl "$HOST_A")
CB=$(wait_ctrl "$HOST_B")
echo "host A: $CA, host B: $CB"
[ -n "$CA" ] && [ -n "$CB" ] && [ "$CA" != "$CB" ] && pass "two controllers, one per host" \
    || { fail "two controllers, one per host"; finish; }

if run "id-ctrl" nvme id-ctrl "$CA"; then
    oncs=$(field oncs)
    [ $((oncs & 0x20)) -ne 0 ] && pass "id-ctrl oncs has reservations ($oncs)" \
        || fail "id-ctrl oncs has reservations ($oncs)"
else
    fail "id-ctrl"
fi
if run "id-ns" nvme id-ns "$CA" --namespace-id=1; then
    rescap=$(field rescap)
    [ $((rescap)) -eq $((0xff)) ] && pass "id-ns rescap is 0xff ($rescap)" \
        || fail "id-ns rescap is 0xff ($rescap)"
else
    fail "id-ns"
fi

echo "--- host A registers key 0xa and acquires Exclusive Access"
ok "resv-register as A" nvme resv-register "$CA" --namespace-id=1 --nrkey=0xa --rrega=0
ok "resv-acquire as A" nvme resv-acquire "$CA" --namespace-id=1 --crkey=0xa --rtype=2 --racqa=0

if run "resv-report --eds" nvme resv-report "$CA" --namespace-id=1 --eds; then
    pass "resv-report --eds"
    [ "$(field rtype)" = "2" ] && pass "report: rtype 2" || fail "report: rtype 2"
    [ "$(field regctl)" = "1" ] && pass "report: one registrant" || fail "report: one registrant"
    grep -qi "rkey *: *\(0x\)\?a$" /tmp/out && pass "report: key a" || fail "report: key a"
    hex=$(echo "$ID_A" | tr -d '-')
    grep -qi "$hex" /tmp/out && pass "report: host A's 128-bit host identifier" \
        || fail "report: host A's 128-bit host identifier"
else
    fail "resv-report --eds"
fi
if run "resv-report without --eds" nvme resv-report "$CA" --namespace-id=1; then
    fail "resv-report without --eds is refused"
elif grep -qi "host.\?id.*inconsistent\|inconsistent.*format\|0x18\|HOST_ID_INCONSIST" /tmp/out; then
    pass "resv-report without --eds is refused"
else
    fail "resv-report without --eds is refused (another error)"
fi

echo "--- host B may neither read nor write; host A may"
conflicts "host B's read conflicts" read_as "$CB"
conflicts "host B's write conflicts" write_as "$CB"
ok "host A reads" read_as "$CA"
ok "host A writes" write_as "$CA"

echo "--- host B registers, cannot acquire, preempts"
ok "resv-register as B" nvme resv-register "$CB" --namespace-id=1 --nrkey=0xb --rrega=0
conflicts "host B's acquire conflicts" \
    nvme resv-acquire "$CB" --namespace-id=1 --crkey=0xb --rtype=2 --racqa=0
ok "host B preempts key 0xa" \
    nvme resv-acquire "$CB" --namespace-id=1 --crkey=0xb --prkey=0xa --rtype=2 --racqa=1
conflicts "host A's read conflicts once preempted" read_as "$CA"
conflicts "host A's write conflicts once preempted" write_as "$CA"
ok "host B writes" write_as "$CB"
if run "resv-report after the preempt" nvme resv-report "$CB" --namespace-id=1 --eds; then
    [ "$(field regctl)" = "1" ] && grep -qi "rkey *: *\(0x\)\?b$" /tmp/out \
        && pass "report: only host B is left" || fail "report: only host B is left"
else
    fail "resv-report after the preempt"
fi

echo "--- host B releases, then clears"
ok "resv-release as B" nvme resv-release "$CB" --namespace-id=1 --crkey=0xb --rtype=2 --rrela=0
ok "host A reads again after the release" read_as "$CA"
ok "resv-release (clear) as B" \
    nvme resv-release "$CB" --namespace-id=1 --crkey=0xb --rtype=2 --rrela=1
if run "resv-report after the clear" nvme resv-report "$CA" --namespace-id=1 --eds; then
    [ "$(field regctl)" = "0" ] && [ "$(field rtype)" = "0" ] \
        && pass "report: nobody registered" || fail "report: nobody registered"
else
    fail "resv-report after the clear"
fi

echo "--- disconnect"
check "disconnect" nvme disconnect -n "$NQN"
if dmesg | grep -i "nvme" | grep -qi "failed\|error"; then
    dmesg | grep -i nvme | tail -20
fi
finish
