# shellcheck shell=sh
# %post for tlschat (rpm): enable, do not start, tlschat-server.service.
# $1 is 1 on a fresh install, 2 on an upgrade.
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
    fi
    if [ "$1" -eq 1 ]; then
        systemctl enable tlschat-server.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 1 ]; then
    echo "tlschat-server is installed and enabled, but not started: sudo systemctl start tlschat-server"
    echo "Admin password (after the first start): /var/lib/tlschat/initial-admin-password"
    echo "Fingerprint: sudo tlschat-server fingerprint --data-dir /var/lib/tlschat"
    echo "Settings: /etc/tlschat/tlschat.toml (all commented out; systemctl reload tlschat-server)"
fi
exit 0
