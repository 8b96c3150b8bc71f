"""Reading what is there of a bag whose recording did not finish.

:func:`recover` opens the storage file of such a bag with :class:`McapScan` (``.mcap``
without a valid summary or footer) or :class:`Sqlite3Scan` (``.db3`` cut short). Both
yield every complete message in file order, then raise :class:`TruncatedBagError`.

MCAP records are read with the ``mcap`` library's sequential
:class:`mcap.stream_reader.StreamReader`, which decompresses chunks as it meets them
(uncompressed, zstd or lz4) and raises at the first record that is cut short. Its message
iterators are not used: by default they sort by log time, so they read the whole file
before yielding anything and a cut file yields nothing. Reading stops at the data-end
record, so a damaged summary section loses no message.

No library reads a cut-off SQLite file: SQLite refuses a file shorter than the page count
in its header. :class:`Sqlite3Scan` works on a copy whose header matches the pages
present.
"""
from __future__ import annotations

import pathlib
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Collection, Iterator

from seg_perception.bag.errors import BagError, TruncatedBagError, one_line
from seg_perception.bag.topics import TopicInfo

MCAP_MAGIC = b'\x89MCAP0\r\n'


def recover(bag: pathlib.Path, file: pathlib.Path, reason: str) -> McapScan | Sqlite3Scan:
    """Open the storage ``file`` of ``bag`` that ``rosbags`` could not open (``reason``).

    Raises:
        BagError: the file is missing, not a bag, or holds no readable topic.
    """
    if not file.is_file():
        raise BagError(f'{bag}: cannot read bag: {reason}')
    try:
        scan: McapScan | Sqlite3Scan = (Sqlite3Scan(file) if file.suffix == '.db3'
                                        else McapScan(file))
    except BagError as exc:
        raise BagError(f'{bag}: cannot read bag: {reason} ({exc})') from None
    if not scan.topics:
        raise BagError(f'{bag}: cannot read bag: {reason}')
    return scan


class McapScan:
    """Sequential MCAP reader for files without a (valid) summary or footer."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.damage: str | None = None
        self.schemas: dict[int, tuple[str, str]] = {}
        self.channels: dict[int, tuple[str, int]] = {}
        counts: dict[int, int] = {}
        try:
            for cid, _, _ in self._records():
                counts[cid] = counts.get(cid, 0) + 1
        except TruncatedBagError as exc:
            self.damage = str(exc)
        self.topics: dict[str, TopicInfo] = {}
        for cid, (topic, sid) in self.channels.items():
            name, msgdef = self.schemas.get(sid, ('', ''))
            info = self.topics.setdefault(topic, TopicInfo(topic, name, 0, msgdef or None))
            info.count += counts.get(cid, 0)

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(channel id, log time, data)`` of each message up to the data end."""
        from mcap.exceptions import EndOfFile, RecordLengthLimitExceeded
        from mcap.records import Channel, DataEnd, Footer, Message, Schema
        from mcap.stream_reader import StreamReader
        size = self.path.stat().st_size
        with self.path.open('rb') as f:
            if f.read(8) != MCAP_MAGIC:
                raise BagError(f'{self.path}: not an MCAP file')
            f.seek(0)
            records = StreamReader(f, record_size_limit=size).records
            while True:
                # where the next record starts: the reader has consumed every record it
                # yielded (the records of a chunk come from the chunk read before them)
                pos = f.tell()
                try:
                    record = next(records, None)
                except (EndOfFile, RecordLengthLimitExceeded, struct.error):
                    cut = 'no MCAP footer' if size - pos < 9 else 'record cut short'
                    raise TruncatedBagError(f'ends mid-write at byte {pos} of {size} ({cut})'
                                            ) from None
                except Exception as exc:  # noqa: BLE001 - damaged chunks raise many types
                    raise TruncatedBagError(f'damaged MCAP record at byte {pos}: '
                                            f'{one_line(exc)}') from None
                if record is None or isinstance(record, (DataEnd, Footer)):
                    return  # the data section is complete
                if isinstance(record, Schema):
                    self.schemas[record.id] = (record.name,
                                               record.data.decode('utf-8', 'replace'))
                elif isinstance(record, Channel):
                    self.channels[record.id] = (record.topic, record.schema_id)
                elif isinstance(record, Message):
                    yield record.channel_id, record.log_time, record.data

    def messages(self, topics: Collection[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, log time ns, CDR bytes)``, then raise if damaged."""
        n = 0
        try:
            for cid, t, raw in self._records():
                topic, sid = self.channels.get(cid, ('', 0))
                if topic in topics:
                    yield topic, self.schemas.get(sid, ('', ''))[0], int(t), raw
                    n += 1
        except TruncatedBagError as exc:
            raise TruncatedBagError(f'{self.path}: bag {exc}; read {n} message(s) before '
                                    'that') from None
        if self.damage:
            raise TruncatedBagError(f'{self.path}: bag {self.damage}')

    def close(self) -> None:
        """Nothing to release (each pass opens the file)."""


def _drop_lost_schema_entries(path: pathlib.Path, pages: int) -> None:
    """Remove schema rows whose root page was cut off (e.g. ``sqlite_stat1`` or an index
    written at close), which would otherwise make SQLite refuse the whole file.
    """
    try:
        con = sqlite3.connect(path)
        try:
            con.execute('PRAGMA writable_schema=ON')
            con.execute('DELETE FROM sqlite_master WHERE rootpage > ?', (pages,))
            con.commit()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        pass  # the reader below reports what is still unreadable


class Sqlite3Scan:
    """Row-by-row reader for a ``.db3`` cut short (page count in its header > file size).

    Works on a temporary copy whose header page count is set to the pages present, then
    reads messages one by one in insertion order, stopping at the first unreadable one.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.damage: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix='seg_bag_recover_')
        copy = pathlib.Path(self._tmp.name) / path.name
        with path.open('rb') as f:
            header = bytearray(f.read(100))
        if len(header) < 100 or not header.startswith(b'SQLite format 3\0'):
            self._tmp.cleanup()
            raise BagError('not an SQLite database')
        (page,) = struct.unpack_from('>H', header, 16)
        page = 65536 if page == 1 else page
        size = path.stat().st_size
        pages = size // page
        shutil.copyfile(path, copy)
        with copy.open('r+b') as f:
            f.truncate(pages * page)
            f.seek(28)
            f.write(struct.pack('>I', pages))
        _drop_lost_schema_entries(copy, pages)
        self.db = sqlite3.connect(f'file:{copy}?immutable=1', uri=True)
        try:
            rows = self.db.execute('SELECT id, name, type, type_description_hash FROM topics'
                                   ).fetchall()
        except sqlite3.DatabaseError:
            try:
                rows = [(*r, None) for r in self.db.execute(
                    'SELECT id, name, type FROM topics').fetchall()]
            except sqlite3.DatabaseError as exc:
                self.close()
                raise BagError(f'unreadable database: {exc}') from None
        self.topic_by_id = {int(r[0]): (r[1], r[2]) for r in rows}
        self.ids = self._message_ids()
        self.topics: dict[str, TopicInfo] = {}
        for _, tid in self.ids:
            name, msgtype = self.topic_by_id.get(tid, ('', ''))
            info = self.topics.setdefault(name, TopicInfo(name, msgtype, 0))
            info.count += 1
        for name, msgtype in self.topic_by_id.values():
            self.topics.setdefault(name, TopicInfo(name, msgtype, 0))
        self.damage = (f'ends mid-write ({size} bytes; {len(self.ids)} complete message(s) '
                       'readable)')

    def _message_ids(self) -> list[tuple[int, int]]:
        ids = []
        try:
            last = self.db.execute('SELECT max(id) FROM messages').fetchone()[0] or 0
        except sqlite3.DatabaseError:
            last = 1 << 62
        i = 1
        while i <= last:
            try:
                # reading the blob walks its overflow pages: a cut-off row fails here
                row = self.db.execute('SELECT topic_id, data FROM messages WHERE id=?',
                                      (i,)).fetchone()
            except sqlite3.DatabaseError:
                break
            if row is None:
                if last == 1 << 62:
                    break
            else:
                ids.append((i, int(row[0])))
            i += 1
        return ids

    def messages(self, topics: Collection[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, timestamp ns, CDR bytes)``, then raise (always cut)."""
        n = 0
        for mid, tid in self.ids:
            name, msgtype = self.topic_by_id.get(tid, ('', ''))
            if name not in topics:
                continue
            try:
                t, data = self.db.execute('SELECT timestamp, data FROM messages WHERE id=?',
                                          (mid,)).fetchone()
            except sqlite3.DatabaseError as exc:
                raise TruncatedBagError(f'{self.path}: bag is damaged after {n} message(s): '
                                        f'{exc}') from None
            yield name, msgtype, int(t), bytes(data)
            n += 1
        raise TruncatedBagError(f'{self.path}: bag {self.damage}; read {n} message(s)')

    def close(self) -> None:
        """Close the database and remove the temporary copy."""
        db = getattr(self, 'db', None)
        if db is not None:
            db.close()
            self.db = None
        self._tmp.cleanup()
