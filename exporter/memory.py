"""glibc malloc tuned for a long-running process whose probes read multi-megabyte replies in threads.

A Kubernetes list page is ~1.5 MB of JSON, read by a thread of the client's pool. glibc serves an
allocation that size with mmap and returns it on free, but then raises its mmap threshold to that
size (the dynamic threshold), so from the second page on such buffers come from the heaps of the
thread arenas and stay resident after they are freed: measured at 10,000 pods, RSS 86 MiB over idle
with the dynamic threshold and 41 MiB with a fixed 128 KiB one (`python -m bench scale`).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("exporter.memory")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's default; fixing it turns the dynamic threshold off


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold (mallopt); False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl, macOS: nothing to tune
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not ok:
        log.info("mallopt(M_MMAP_THRESHOLD) refused; large buffers follow glibc's dynamic threshold")
    return ok
