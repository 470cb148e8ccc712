#!/usr/bin/env python3
"""Which b-trees a SQLite WAL's frames belong to: frames per commit, by table or index.

Usage: scripts/wal-census.py DB WAL

DB and WAL are copies of a database file and its `-wal`, taken together while the service
writes (during a benchmark round: `bench.db` and `bench.db-wal` in the round's temporary
directory). Only the frames of the WAL's current generation are counted (the salt in each
frame header matches the file header's). Pages are mapped to their b-tree with SQLite's
`dbstat` table, read from a scratch copy of the two files, so the originals are not
touched. A page the copy does not place (freed or new since) counts as "?free/new".
Python's standard library only.
"""

import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def frames(wal_path):
    data = open(wal_path, "rb").read()
    if len(data) < 32:
        return 0, [], []
    _magic, _ver, page_size, _ckpt, salt1, salt2, _c1, _c2 = struct.unpack(">8I", data[:32])
    pages, commits, run, off = [], [], 0, 32
    while off + 24 + page_size <= len(data):
        page, commit, s1, s2, _k1, _k2 = struct.unpack(">6I", data[off : off + 24])
        if (s1, s2) != (salt1, salt2):
            break
        pages.append(page)
        run += 1
        if commit:
            commits.append(run)
            run = 0
        off += 24 + page_size
    return page_size, pages, commits


def owners(db_path, wal_path):
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "census.db")
        shutil.copy(db_path, copy)
        shutil.copy(wal_path, copy + "-wal")
        conn = sqlite3.connect(copy)
        try:
            return dict((page, name) for name, page in conn.execute("SELECT name, pageno FROM dbstat"))
        finally:
            conn.close()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    db_path, wal_path = sys.argv[1], sys.argv[2]
    page_size, pages, commits = frames(wal_path)
    owner = owners(db_path, wal_path)
    n = max(len(commits), 1)
    print(f"page size {page_size}, frames {len(pages)}, commits {len(commits)}, "
          f"frames per commit {len(pages) / n:.1f}")
    for name, k in collections.Counter(owner.get(p, "?free/new") for p in pages).most_common():
        print(f"  {name:36s} {k:7d}  {k / n:6.1f} per commit")


if __name__ == "__main__":
    main()
