# shellcheck shell=sh
# %postun for tlschat (rpm): reload systemd; restart on upgrade ($1 >= 1)
# if it was running. /var/lib/tlschat (certificate, accounts, bans) is kept.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart tlschat-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
