#!/bin/sh
# chassis_ctl.sh - the `chassis_control` program of an OpenIPMI ipmi_sim test BMC.
#
# Usage (ipmi_sim runs it through popen(3), i.e. /bin/sh -c, with each value
# in double quotes):
#   chassis_ctl.sh STATEFILE get   PARM...          -> prints "PARM:VALUE" lines
#   chassis_ctl.sh STATEFILE set   PARM VALUE...    -> applies the changes
#   chassis_ctl.sh STATEFILE check PARM VALUE...    -> exit 0 iff every pair is valid
#
# The fake machine's power state lives in STATEFILE: "1" (on) or "0" (off); a
# missing file means on. Every `set` pair is appended to STATEFILE.log as
#   <unix-seconds.nanoseconds> set <parm> <value>
# so tests can assert the order of what the BMC was told to do (power 0 then
# power 1 for a reboot). `get` is not logged (clients poll it constantly).
#
# Parameters ipmi_sim uses (lanserv/bmc_chassis.c):
#   power 0|1   Chassis Control power down / up; power cycle = power 0, then
#               power 1 from ipmi_sim itself one second later
#   reset 1     hard reset: a pulse, the power state does not change
#   shutdown 1  soft (ACPI) shutdown: modelled as an OS that obeys -> power off
#   boot X      boot device (none|pxe|default|cdrom|bios), remembered in
#               STATEFILE.boot
#   identify "INTERVAL FORCE"  chassis identify LED: logged only
#
# Output on stdout goes back to ipmi_sim; a non-zero exit makes the BMC answer
# the IPMI command with completion code 0xff (unknown error).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 STATEFILE get|set|check [PARM [VALUE]]..." >&2
    exit 2
fi
statefile=$1
op=$2
shift 2
log="$statefile.log"

# Replace a file's content atomically (readers never see it empty).
put() {
    printf '%s\n' "$2" >"$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
}

power_now() {
    if [ -f "$statefile" ]; then
        v=$(cat "$statefile")
        case "$v" in
            0 | 1) echo "$v" ;;
            *) echo "power state file $statefile holds '$v', not 0/1" >&2; return 1 ;;
        esac
    else
        echo 1
    fi
}

valid() { # PARM VALUE -> exit status
    case "$1" in
        power) [ "$2" = 0 ] || [ "$2" = 1 ] ;;
        reset | shutdown) [ "$2" = 1 ] || [ "$2" = 0 ] ;;
        boot) case "$2" in none | pxe | default | cdrom | bios) true ;; *) false ;; esac ;;
        identify) true ;;
        *) false ;;
    esac
}

case "$op" in
    get)
        for parm in "$@"; do
            case "$parm" in
                power)
                    p=$(power_now)
                    echo "power:$p"
                    ;;
                boot)
                    if [ -f "$statefile.boot" ]; then
                        echo "boot:$(cat "$statefile.boot")"
                    else
                        echo "boot:default"
                    fi
                    ;;
                *) echo "get: unknown parameter '$parm'"; exit 1 ;;
            esac
        done
        ;;
    set)
        while [ $# -gt 0 ]; do
            if [ $# -lt 2 ]; then
                echo "set: parameter '$1' has no value"
                exit 1
            fi
            parm=$1
            val=$2
            shift 2
            if ! valid "$parm" "$val"; then
                echo "set: invalid $parm '$val'"
                exit 1
            fi
            echo "$(date +%s.%N) set $parm $val" >>"$log"
            case "$parm" in
                power) put "$statefile" "$val" ;;
                shutdown) [ "$val" = 0 ] || put "$statefile" 0 ;;
                boot) put "$statefile.boot" "$val" ;;
                reset | identify) : ;;
            esac
        done
        ;;
    check)
        while [ $# -gt 0 ]; do
            [ $# -ge 2 ] || exit 1
            valid "$1" "$2" || exit 1
            shift 2
        done
        ;;
    *)
        echo "unknown operation '$op' (want get, set or check)"
        exit 1
        ;;
esac
exit 0
