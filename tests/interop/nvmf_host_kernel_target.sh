#!/bin/sh
# Guest script: the Linux kernel's NVMe/TCP target (nvmet-tcp) as a peer for OUR
# initiator (tests/interop/test_nvmf_host_kernel_target.py). Run by run-guest with
#   --hostfwd HOSTPORT:4420 --share CTLDIR:/mnt/ctl
# It serves two subsystems on 0.0.0.0:4420:
#   $NQN          one namespace (a brd ramdisk of NS_MB MiB), any host allowed
#   $NQN-closed   one namespace, no host allowed (a Connect to it is refused)
# Then it obeys files the host drops into the control share:
#   down  unlink the subsystems from the port (every connection is dropped and the
#         port stops listening: the target is "gone"); answered with down.done
#   up    link them again (the target is "back"); answered with up.done
#   stop  tear down and exit
set -eu
NQN=${NQN:-nqn.2024-01.io.example:initiator-peer}
NS_MB=${NS_MB:-32}
CTL=${CTL:-/mnt/ctl}
CFG=/sys/kernel/config/nvmet
modprobe brd rd_nr=2 rd_size=$((NS_MB * 1024)) max_part=0

make_subsystem() {  # name device allow_any
  mkdir "$CFG/subsystems/$1"
  echo "$3" > "$CFG/subsystems/$1/attr_allow_any_host"
  mkdir "$CFG/subsystems/$1/namespaces/1"
  echo -n "$2" > "$CFG/subsystems/$1/namespaces/1/device_path"
  echo 1 > "$CFG/subsystems/$1/namespaces/1/enable"
}
make_subsystem "$NQN" /dev/ram0 1
make_subsystem "$NQN-closed" /dev/ram1 0

mkdir $CFG/ports/1
echo tcp > $CFG/ports/1/addr_trtype
echo ipv4 > $CFG/ports/1/addr_adrfam
echo 0.0.0.0 > $CFG/ports/1/addr_traddr
echo 4420 > $CFG/ports/1/addr_trsvcid

link() {
  ln -s "$CFG/subsystems/$NQN" "$CFG/ports/1/subsystems/$NQN"
  ln -s "$CFG/subsystems/$NQN-closed" "$CFG/ports/1/subsystems/$NQN-closed"
}
unlink_all() {
  rm -f "$CFG/ports/1/subsystems/$NQN" "$CFG/ports/1/subsystems/$NQN-closed"
}
link
echo "NVMF-HOST-PEER-READY nqn=$NQN size_mb=$NS_MB"

while [ ! -e "$CTL/stop" ]; do
  if [ -e "$CTL/down" ]; then
    rm -f "$CTL/down"
    unlink_all
    echo "NVMF-HOST-PEER-DOWN"
    touch "$CTL/down.done"
  fi
  if [ -e "$CTL/up" ]; then
    rm -f "$CTL/up"
    link
    echo "NVMF-HOST-PEER-UP"
    touch "$CTL/up.done"
  fi
  sleep 0.1
done
unlink_all
echo "NVMF-HOST-PEER-STOP"
