# shellcheck shell=sh
# %pre for tlschat (rpm): create the system user before the files land.
getent group tlschat >/dev/null 2>&1 || groupadd --system tlschat
getent passwd tlschat >/dev/null 2>&1 || \
    useradd --system --gid tlschat --home-dir /var/lib/tlschat --no-create-home \
        --shell /sbin/nologin --comment "tlschat server" tlschat
exit 0
