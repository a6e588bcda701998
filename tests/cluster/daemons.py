"""A one-node SLURM cluster with accounting, a PostgreSQL server and an MLflow tracking server.

Every daemon runs in the foreground of a process the harness starts (its own session), from a config
generated in one temporary folder, on loopback ports chosen free. `Services.stop` ends each by that PID
(its process group when it leaves children behind) in reverse order, and `leftovers` finds any process
still carrying the run's marker in its environment (jobs the daemons started inherit it). Should the test
process itself be killed, `python tests/cluster/daemons.py sweep RUN` (make test-cluster runs it after
pytest, whatever pytest's fate) ends what still carries the marker of run RUN ($SEQBENCH_CLUSTER_RUN).

Two things make the node a standard one for the executor plugin: slurmd runs in a private mount
namespace where the generated slurm.conf is /etc/slurm/slurm.conf (the plugin's job step drops
SLURM_CONF before its inner `srun`, so a node must find its config where Slurm looks by default), and
slurmdbd keeps accounting in MariaDB (the plugin reads job states with `sacct`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

MARKER = "SEQBENCH_CLUSTER_HARNESS"
RUN = "SEQBENCH_CLUSTER_RUN"  # names one harness run (set by make test-cluster); else the temporary folder
NODE = "node1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REQUIRED = ("munged", "munge", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch",
            "sacct", "sacctmgr", "unshare", "mount")


def missing_tools() -> list[str]:
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    return missing + ([str(PG_BIN / "postgres")] if not (PG_BIN / "postgres").exists() else [])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, ready: Callable[[], bool], log: Path | None, timeout: float = 120.0) -> float:
    """Seconds until `ready()`; a clear error with the daemon's log tail when it never gets there."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if ready():
                return time.monotonic() - start
        except (OSError, subprocess.SubprocessError):
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else "(no log)"
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s; its log ends:\n{tail}")


def _ok(args: list[str], env: dict[str, str] | None = None) -> bool:
    return subprocess.run(args, env=env, capture_output=True, timeout=20).returncode == 0


class Services:
    """The daemons of one harness run, all under `root` (a fresh temporary folder)."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ports = {name: free_port() for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd", "postgres",
                                                     "mlflow")}
        self.marker = os.environ.get(RUN) or str(root)
        self.slurm_conf = root / "etc" / "slurm" / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.startup: dict[str, float] = {}
        os.chmod(root, 0o755)  # PostgreSQL runs as the postgres user and must reach its folder

    # --- environment ------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """What the harness's commands (and, through sbatch --export=ALL, the jobs) run with."""
        env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "SLURM_JOBID", "MLFLOW_TRACKING_URI")}
        return dict(env, SLURM_CONF=str(self.slurm_conf), **{MARKER: self.marker}, **extra)

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    def _start(self, name: str, args: list[str], **kwargs) -> subprocess.Popen:
        log = self.root / "logs" / f"{name}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env=kwargs.pop("env", self.env()), **kwargs)
        self.procs.append((name, proc))
        return proc

    def _timed(self, name: str, start: Callable[[], None]) -> None:
        began = time.monotonic()
        start()
        self.startup[name] = round(time.monotonic() - began, 1)

    # --- daemons ----------------------------------------------------------------------------------
    def start_all(self) -> None:
        for name, start in (("munge", self._munge), ("mariadb", self._mariadb), ("slurmdbd", self._slurmdbd),
                            ("slurmctld", self._slurmctld), ("slurmd", self._slurmd),
                            ("postgres", self._postgres), ("mlflow", self._mlflow)):
            self._timed(name, start)

    def _munge(self) -> None:
        folder = self.munge_socket.parent
        folder.mkdir(mode=0o755)
        key = self.root / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self._start("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--log-file={self.root / 'logs' / 'munged.log'}",
                               f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}"])
        wait_for("munged", lambda: _ok(["munge", "-n", "-S", str(self.munge_socket)]),
                 self.root / "logs" / "munged.out", 30)

    def _mariadb(self) -> None:
        data = self.root / "mariadb"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self._start("mariadb", ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                                f"--socket={data}/mysqld.sock", f"--port={self.ports['mariadb']}",
                                "--bind-address=127.0.0.1", "--skip-name-resolve",
                                "--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900"])
        wait_for("MariaDB", lambda: _ok(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P",
                                         str(self.ports["mariadb"]), "-u", "root", "-e", "select 1"]),
                 self.root / "logs" / "mariadb.out")

    def _write_slurm_configs(self) -> None:
        folder = self.slurm_conf.parent
        for sub in ("state", "spool", "log"):
            (self.root / "slurm" / sub).mkdir(parents=True, exist_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        slurm, logs = self.root / "slurm", self.root / "logs"
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.8)
        cpus = os.cpu_count() or 1
        (folder / "slurm.conf").write_text(f"""\
ClusterName=seqbench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ports['slurmctld']}
SlurmdPort={self.ports['slurmd']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={slurm / 'state'}
SlurmdSpoolDir={slurm / 'spool'}
SlurmctldPidFile={slurm / 'slurmctld.pid'}
SlurmdPidFile={slurm / 'slurmd.pid'}
SlurmctldLogFile={logs / 'slurmctld.log'}
SlurmdLogFile={logs / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.ports['slurmdbd']}
AccountingStoragePass={self.munge_socket}
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES:8
""")
        dbd = folder / "slurmdbd.conf"
        dbd.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports['slurmdbd']}
SlurmUser=root
PidFile={slurm / 'slurmdbd.pid'}
LogFile={logs / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mariadb']}
StorageUser=root
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)  # slurmdbd refuses a config others can read

    def _slurmdbd(self) -> None:
        self._write_slurm_configs()
        self._start("slurmdbd", ["slurmdbd", "-D"])
        wait_for("slurmdbd", lambda: _ok(["sacctmgr", "-n", "list", "cluster"], self.env()),
                 self.root / "logs" / "slurmdbd.log")
        for command in (["add", "cluster", "seqbench"],
                        ["add", "account", "seqbench", "Description=seqbench", "Organization=seqbench"],
                        ["add", "user", "root", "Account=seqbench", "DefaultAccount=seqbench"]):
            subprocess.run(["sacctmgr", "-i", *command], env=self.env(), check=True, capture_output=True,
                           timeout=60)

    def _slurmctld(self) -> None:
        self._start("slurmctld", ["slurmctld", "-D", "-i"])
        wait_for("slurmctld", lambda: _ok(["scontrol", "ping"], self.env()), self.root / "logs" / "slurmctld.log")

    def _slurmd(self) -> None:
        # slurmd and every job it starts see the generated config at Slurm's default path, nobody else does
        folder = self.slurm_conf.parent
        env = self.env()
        env.pop("SLURM_CONF")
        self._start("slurmd", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f"mount --bind '{folder}' /etc/slurm && exec slurmd -D -N {NODE}"], env=env)

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True)
            return out.stdout.strip() == "idle"

        wait_for("slurmd (node idle)", idle, self.root / "logs" / "slurmd.log")

    def _postgres(self) -> None:
        data = self.root / "postgres"
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(data / "data"), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], user="postgres", check=True, capture_output=True, timeout=120)
        self._start("postgres", [str(PG_BIN / "postgres"), "-D", str(data / "data"), "-p",
                                 str(self.ports["postgres"]), "-k", str(data), "-c", "listen_addresses=127.0.0.1"],
                    user="postgres", cwd=data)
        address = ["-h", "127.0.0.1", "-p", str(self.ports["postgres"]), "-U", "postgres"]
        wait_for("PostgreSQL", lambda: _ok([str(PG_BIN / "pg_isready"), *address]), self.root / "logs" / "postgres.out")
        subprocess.run([str(PG_BIN / "createdb"), *address, "mlflow"], check=True, capture_output=True, timeout=60)

    def _mlflow(self) -> None:
        store = f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/mlflow"
        # job execution (MLflow's GenAI job runner) is not used and would add seven worker processes
        env = self.env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self._start("mlflow", [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", store,
                               "--artifacts-destination", str(self.root / "mlflow-artifacts"),
                               "--host", "127.0.0.1", "--port", str(self.ports["mlflow"]), "--workers", "2"],
                    env=env)

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=5) as response:
                return response.status == 200

        wait_for("MLflow server", healthy, self.root / "logs" / "mlflow.out", 240)

    # --- teardown ---------------------------------------------------------------------------------
    def cancel_jobs(self) -> None:
        """Cancel every job and wait up to 60 s for the queue to empty, so their steps end with slurmd alive."""
        if not any(name == "slurmctld" and proc.poll() is None for name, proc in self.procs):
            return
        try:
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env(), capture_output=True, timeout=30)
            wait_for("an empty queue", lambda: not subprocess.run(
                ["squeue", "-h"], env=self.env(), capture_output=True, text=True, timeout=20).stdout.strip(),
                None, 60)
        except (subprocess.SubprocessError, RuntimeError):  # the daemons stop next regardless
            pass

    def stop(self) -> None:
        """Every daemon this object started, last first: TERM to its process group, KILL after 20 s."""
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # workers a server left behind in its group
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # unkillable (D state): `leftovers` reports it
                pass
        self.procs.clear()

    def leftovers(self) -> list[psutil.Process]:
        """Processes still marked as started by this harness run (daemons, jobs, their children)."""
        return marked(self.marker)


def marked(marker: str) -> list[psutil.Process]:
    """Processes of the run: those carrying its marker, and the job step daemons (slurmstepd, which start
    with an environment of their own) holding a file of its folder open."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER) == marker or (proc.name() == "slurmstepd" and _holds(proc.pid, marker)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _holds(pid: int, marker: str) -> bool:
    """Whether the process has a file open whose path contains `marker` (the run's folder, or its name)."""
    folder = Path(f"/proc/{pid}/fd")
    for fd in folder.iterdir():
        try:
            if marker in os.readlink(fd):
                return True
        except OSError:
            continue
    return False


def sweep(marker: str) -> int:
    """TERM, then KILL after 20 s (slurmstepd ignores TERM), every process of run `marker` still alive;
    1 if there was any."""
    left = marked(marker)
    for proc in left:
        print(f"cluster test: ending {proc.pid} {' '.join(proc.cmdline()[:3])}, left behind by run {marker}")
        proc.terminate()
    for proc in psutil.wait_procs(left, timeout=20)[1]:
        proc.kill()
    return 1 if left else 0


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "sweep":
        sys.exit("usage: python tests/cluster/daemons.py sweep RUN")
    sys.exit(sweep(sys.argv[2]))
