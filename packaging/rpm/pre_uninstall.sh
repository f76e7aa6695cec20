# shellcheck shell=sh
# %preun for tlschat (rpm): on erase ($1 = 0) stop and disable the unit.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl stop tlschat-server.service >/dev/null 2>&1 || :
    fi
    systemctl disable tlschat-server.service >/dev/null 2>&1 || :
fi
exit 0
