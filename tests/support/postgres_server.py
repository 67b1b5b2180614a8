"""A PostgreSQL server of a test's own, to crash and start again: initdb into a fresh folder, listen
on a free loopback port, `crash()` is `pg_ctl stop -m immediate` (no shutdown checkpoint, as a
killed server), `start()` runs crash recovery. Always stopped and removed afterwards.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (Debian's
package makes it), in a folder under the system's temporary directory that user can reach.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog_sync.runtime.processes import free_port
from tests.support.requirements import require

ROLE = "catalog_sync"


def postgres_bin_dir() -> Path | None:
    """Newest installed server binaries: PG_BIN_DIR, else Debian's /usr/lib/postgresql/<v>/bin."""
    if os.environ.get("PG_BIN_DIR"):
        return Path(os.environ["PG_BIN_DIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PostgresServer:
    """One private server. `settings` go to postgresql.conf (e.g. synchronous_commit)."""

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="catalog-sync-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.url = f"postgresql://{ROLE}@127.0.0.1:{self.port}/postgres"
        self.crashes = 0
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            account = pwd.getpwnam(self._user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync")
        conf = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                "unix_socket_directories": f"'{self.folder}'", "fsync": "on", **(settings or {})}
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log_text()[-2000:]}")
        return done

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""

    def start(self) -> PostgresServer:
        """Start (after a crash: recover) and return once it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "start")
        return self

    def crash(self) -> None:
        """Stop without a shutdown checkpoint: what a killed server leaves behind."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.crashes += 1

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def private_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """A started private server for the block; skips (fails under CATALOG_SYNC_STRICT) without the
    PostgreSQL server binaries, or as root without a `postgres` user to run them."""
    bin_dir = postgres_bin_dir()
    require(bin_dir is not None and (bin_dir / "initdb").exists(),
            "PostgreSQL server binaries not found (set PG_BIN_DIR; Debian: apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require(False, "running as root and no 'postgres' user to run a private PostgreSQL server as")
    server = PostgresServer(bin_dir, settings)
    try:
        yield server.start()
    finally:
        server.close()
