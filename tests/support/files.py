"""Files of random bytes, for what stores them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def random_file(tmp_path: Path, size: int, name: str = "data.csv") -> tuple[Path, str]:
    """A file of `size` random bytes, and the SHA-256 of its content."""
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()
