"""A small disk for one agent's data_dir: a size-capped tmpfs in a private mount namespace.

The namespace is held open by a `sleep` process, so the tmpfs (and the journal on it) outlives
every agent restart. Processes that must see the disk run under `nsenter -t HOLDER -m`; the test
itself reaches the files through /proc/HOLDER/root. Nothing is mounted in the test's own namespace,
so a crash cannot leave a mount behind.
"""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path


class SmallDiskError(RuntimeError):
    """The tmpfs could not be set up (the message says which step and why)."""


FILL_BLOCK = 256 * 1024


class SmallDisk:
    def __init__(self, mount_point: Path, size_mib: int) -> None:
        mount_point.mkdir(parents=True, exist_ok=True)
        self.mount_point = mount_point
        self.size_mib = size_mib
        script = f"mount -t tmpfs -o size={size_mib}m cansync-faults {mount_point} && exec sleep infinity"
        self._holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not self._mounted():
            if self._holder.poll() is not None:
                err = self._holder.stderr.read().decode(errors="replace") if self._holder.stderr else ""
                raise SmallDiskError(f"could not mount a {size_mib} MiB tmpfs on {mount_point}: {err.strip()}")
            if time.monotonic() > deadline:
                self.close()
                raise SmallDiskError(f"the tmpfs on {mount_point} did not appear within 10 s")
            time.sleep(0.02)
        self.filler = self.outside(mount_point / ".filler")

    def _mounted(self) -> bool:
        try:
            mounts = Path(f"/proc/{self._holder.pid}/mounts").read_text()
        except OSError:
            return False
        return any(line.split()[1] == str(self.mount_point) for line in mounts.splitlines() if line.strip())

    @property
    def prefix(self) -> list[str]:
        """Put this before a command line to run it where the small disk is mounted."""
        return ["nsenter", "-t", str(self._holder.pid), "-m", "--"]

    def outside(self, path: Path) -> Path:
        """The same file as seen from the test's own mount namespace."""
        return Path(f"/proc/{self._holder.pid}/root") / path.relative_to("/")

    def fill(self) -> int:
        """Write a filler file until the disk refuses (ENOSPC); returns the bytes written."""
        written = 0
        block = b"\0" * FILL_BLOCK
        with open(self.filler, "ab", buffering=0) as handle:
            while True:
                try:
                    written += handle.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        # tmpfs can take a partial block after ENOSPC; squeeze out the last bytes too
        with open(self.filler, "ab", buffering=0) as handle:
            for size in (4096, 512, 1):
                while True:
                    try:
                        written += handle.write(b"\0" * size)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        result = subprocess.run(
            [*self.prefix, "stat", "-f", "-c", "%a %S", str(self.mount_point)], capture_output=True, text=True
        )
        blocks, size = result.stdout.split()
        return int(blocks) * int(size)

    def close(self) -> None:
        if self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait(10)
