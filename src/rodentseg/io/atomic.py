"""The protocol of every rodentseg file writer: the output appears only on a clean close."""

from __future__ import annotations


class AtomicWriter:
    """Base of writers that build their file under a temporary name.

    Subclasses define :meth:`close` (finish and move the file into place) and :meth:`abort`
    (drop the unfinished file). As a context manager the writer closes when the block ends
    normally and aborts when it raises (Ctrl-C included).
    """

    def close(self):
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
