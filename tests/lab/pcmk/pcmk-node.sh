#!/bin/sh
# pcmk-node.sh NS DIR FILE... - run pacemakerd (foreground) inside network
# namespace NS, where corosync runs, with a private mount namespace:
#   /var/lib/pacemaker  <- DIR/varlib   (fresh CIB, owned by hacluster)
#   /var/log/pacemaker  <- DIR/log      (pacemaker.log is written here)
#   /run                <- DIR/run (with resource-agents/, the agents' HA_RSCTMP)
#   /usr/sbin           <- overlay: lower /usr/sbin, upper DIR/sbin-upper
# A node without a CIB starts from cib-seed.xml (beside this script).
# Each FILE (e.g. fence-agents/fence_ironfence_ipmi and the ironfence binary)
# is copied into the upper layer first, so pacemaker-fenced and stonith_admin
# see it in /usr/sbin while nothing is installed on the host. Every mount dies
# with the mount namespace, i.e. with the last process in it.
# exec all the way: the PID of this script is pacemakerd's PID.
# Run Pacemaker's CLI against it with pcmk-run.sh PID CMD...
set -eu
NS=$1
D=$2
shift 2
mkdir -p "$D/varlib/cib" "$D/varlib/pengine" "$D/varlib/blackbox" "$D/varlib/cores" \
    "$D/log" "$D/run/resource-agents" "$D/sbin-upper" "$D/sbin-work"
here=$(cd "$(dirname -- "$0")" && pwd)
[ -e "$D/varlib/cib/cib.xml" ] || cp "$here/cib-seed.xml" "$D/varlib/cib/cib.xml"
chmod 600 "$D/varlib/cib/cib.xml"
chown -R hacluster:haclient "$D/varlib" "$D/log"
chmod 750 "$D"/varlib/*
chmod 770 "$D/log"
chmod 755 "$D/sbin-upper"
for f in "$@"; do
    dst=$D/sbin-upper/$(basename -- "$f")
    # An executable is hard-linked (free, and the ironfence binary is large);
    # anything else, or across filesystems, is copied and made executable
    # (never chmod a link: that would change the original).
    if ! { [ -x "$f" ] && ln -f -- "$f" "$dst" 2>/dev/null; }; then
        cp -f -- "$f" "$dst"
        chmod 755 "$dst"
    fi
done
exec ip netns exec "$NS" unshare --mount --propagation private env D="$D" sh -c '
  set -e
  mount --bind "$D/varlib" /var/lib/pacemaker
  mount --bind "$D/log" /var/log/pacemaker
  mount --bind "$D/run" /run
  mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$D/sbin-upper,workdir=$D/sbin-work" /usr/sbin
  export PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none PCMK_logpriority=info PCMK_blackbox=no
  exec pacemakerd
'
