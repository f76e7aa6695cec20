#!/usr/bin/env python3
"""Packs one directory into a reproducible .tar.gz or .zip: the same tree
and SOURCE_DATE_EPOCH give the same bytes on every run and every runner
of one image, whoever owns the files and whatever their mtimes and umask.

  pack.py tar.gz|zip ARCHIVE STAGE_DIR NAME

Entries are STAGE_DIR/NAME and everything under it, sorted by name (byte
order), with owner and group 0 and no names, mode 0755 for directories
and executables and 0644 for other files, mtime SOURCE_DATE_EPOCH. The
gzip header holds neither a file name nor a time (what `gzip -n` does);
the zip entries carry no extra fields (what `zip -X` does) and the
SOURCE_DATE_EPOCH date in UTC (zip dates start in 1980). Python rather
than GNU tar and zip because the macOS and Windows runners have neither
in a version with these options.
"""

import gzip
import io
import os
import stat
import sys
import tarfile
import time
import zipfile


def entries(stage, name):
    """(relative path, absolute path, is_dir), sorted by relative path."""
    out = [(name, os.path.join(stage, name), True)]
    for root, dirs, files in os.walk(os.path.join(stage, name)):
        for d in dirs:
            full = os.path.join(root, d)
            out.append((os.path.relpath(full, stage).replace(os.sep, "/"), full, True))
        for f in files:
            full = os.path.join(root, f)
            out.append((os.path.relpath(full, stage).replace(os.sep, "/"), full, False))
    return sorted(out, key=lambda e: e[0].encode("utf-8"))


def mode_of(full, is_dir):
    if is_dir:
        return 0o755
    executable = os.stat(full).st_mode & stat.S_IXUSR or full.endswith(".exe")
    return 0o755 if executable else 0o644


def pack_tar_gz(archive, stage, name, epoch):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel, full, is_dir in entries(stage, name):
            info = tarfile.TarInfo(rel + ("/" if is_dir else ""))
            info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
            info.mode = mode_of(full, is_dir)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            if is_dir:
                tar.addfile(info)
            else:
                info.size = os.path.getsize(full)
                with open(full, "rb") as f:
                    tar.addfile(info, f)
    with open(archive, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


def pack_zip(archive, stage, name, epoch):
    date = time.gmtime(max(epoch, 315532800))[:6]  # 1980-01-01, the zip epoch
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for rel, full, is_dir in entries(stage, name):
            info = zipfile.ZipInfo(rel + ("/" if is_dir else ""), date_time=date)
            info.create_system = 3  # Unix, so that external_attr carries the mode
            mode = mode_of(full, is_dir)
            if is_dir:
                info.external_attr = ((stat.S_IFDIR | mode) << 16) | 0x10
                z.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    z.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("tar.gz", "zip"):
        sys.exit("usage: pack.py tar.gz|zip ARCHIVE STAGE_DIR NAME")
    kind, archive, stage, name = sys.argv[1:]
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not epoch_text.isdigit():
        sys.exit("pack.py: SOURCE_DATE_EPOCH must be set to a Unix time (seconds)")
    epoch = int(epoch_text)
    if kind == "tar.gz":
        pack_tar_gz(archive, stage, name, epoch)
    else:
        pack_zip(archive, stage, name, epoch)


if __name__ == "__main__":
    main()
