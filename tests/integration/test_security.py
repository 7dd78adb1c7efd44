"""Security: a password URL, an ACL user holding only the README's minimal ACL line (on
the session's server, every node of a cluster in the cluster run), TLS with certificates
given as URL query parameters (mutual TLS, a wrong CA refused), and two key prefixes on
one server that never see or touch each other. Each end to end: deposit, a `workflow run`
worker, status, and the operator's commands."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from workflow import Client, Settings, Work
from workflow.errors import ConnectionError, ScriptError, WorkflowError, WorkNotFound
from workflow.keys import namespace_pattern
from workflow.registry import WorkerInfo, list_workers, publish
from workflow.server import PrivateServer
from workflow.status import snapshot

from ..cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "examples.calibration.calibrate"
ACL_USER, ACL_PASS, ACL_PREFIX = "wfworker", "s3cret-w0rker", "wfsec"
MINIMAL_ACL = (
    "on >{password} resetkeys ~{prefix}:* resetchannels -@all +@read +@write -@dangerous "
    "+evalsha +script|load +multi +exec +ping +time +info +client|setname +client|id "
    "+client|unblock +cluster|slots +command"
)
"""The README's ACL line (Security section), with the user's password and prefix."""


def run_worker(url: str, prefix: str, pipeline: str) -> subprocess.CompletedProcess[str]:
    """`workflow run PIPELINE calibrate --burst` as a subprocess, to completion."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    cmd = [sys.executable, "-m", "workflow.cli.main", "--redis-url", url, "--prefix", prefix,
           "run", pipeline, FUNCTION, "--burst", "-c", "2"]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def status_json(url: str, prefix: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    cmd = [sys.executable, "-m", "workflow.cli.main", "--redis-url", url, "--prefix", prefix,
           "status", "--json"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def end_to_end(url: str, prefix: str, pipeline: str = "secure") -> None:
    """Deposit, run a worker, read the status, and use the operator's commands."""
    with Client(Settings(url=url, prefix=prefix)) as c:
        works = [Work(pipeline=pipeline, parameters={"beam": b}, retries=0) for b in (1, 2, 300)]
        c.deposit(works)
        done = run_worker(url, prefix, pipeline)
        assert done.returncode == 0, done.stderr
        assert c.counts(pipeline) == {
            "queued": 0, "delayed": 0, "running": 0, "success": 2, "failure": 1, "cancelled": 0,
        }  # fmt: skip
        assert c.get(works[0].id).results == {"beam": 1, "gain": 1.01}
        [p] = snapshot(c).pipelines
        assert p.name == pipeline and p.counts["success"] == 2
        shown = status_json(url, prefix)
        assert [x["name"] for x in shown["pipelines"]] == [pipeline]
        assert c.retry(works[2].id) == "failure"
        c.pause(pipeline)
        c.resume(pipeline)
        assert c.cancel(works[2].id) == "queued"
        assert c.delete(works[0].id)
        publish(c, WorkerInfo(name="w1", host="h", pid=1, pipelines=[pipeline], function=None,
                              concurrency=1, started=0.0, beat=1.0), ttl_s=30)  # fmt: skip
        assert [w.name for w in list_workers(c)] == ["w1"]
        # A wait on several pipelines (in a cluster: one BLPOP per shard, the rest
        # cancelled by CLIENT UNBLOCK when one wakes), woken by a deposit.
        names = [f"{pipeline}-{i}" for i in range(4)]
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(c.withdraw, names, timeout_s=10)
            time.sleep(0.2)
            c.deposit([Work(pipeline=names[-1], id="late")])
            deposited = time.monotonic()
            assert [w.id for w in later.result(timeout=10)] == ["late"]
            assert time.monotonic() - deposited < 1.0  # not the 5 s idle wait
        assert c.purge() > 0
        assert c.pipelines() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a password (the default user) ------------------------------------------------------


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    with PrivateServer(tmp_path_factory.mktemp("auth")) as server:
        with redis.Redis(port=server.port) as r:
            r.config_set("requirepass", "pw-for-default")
        yield server
        with redis.Redis(port=server.port, password="pw-for-default") as r:
            r.config_set("requirepass", "")  # so that the server's stop can SHUTDOWN it


def with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("redis://", f"redis://{user}:{password}@", 1)


@pytest.mark.standalone  # its own server: nothing to add in the cluster run
def test_a_password_url_works_end_to_end(password_server: PrivateServer) -> None:
    end_to_end(with_credentials(password_server.url, "", "pw-for-default"), "wfpw")


@pytest.mark.standalone
def test_a_missing_or_wrong_password_is_one_clear_error(password_server: PrivateServer) -> None:
    for url in (password_server.url, with_credentials(password_server.url, "", "wrong")):
        with Client(Settings(url=url, prefix="wfpw")) as c, pytest.raises(WorkflowError) as e:
            c.deposit([Work(pipeline="secure")])
        assert isinstance(e.value, ConnectionError | ScriptError)
        assert "auth" in str(e.value).lower() or "password" in str(e.value).lower()


# -- an ACL user with the minimal ACL line ------------------------------------------------


def node_ports(server: PrivateServer | LocalCluster) -> list[int]:
    return server.ports if isinstance(server, LocalCluster) else [server.port]


@pytest.fixture
def acl_url(redis_server: PrivateServer | LocalCluster, client: Client) -> Iterator[str]:
    """The session server (every node of a cluster) with the ACL user; its URL."""
    rule = MINIMAL_ACL.format(password=ACL_PASS, prefix=ACL_PREFIX).split()
    for port in node_ports(redis_server):
        with redis.Redis(port=port) as r:
            r.execute_command("ACL", "SETUSER", ACL_USER, "reset", *rule)
    yield with_credentials(redis_server.url, ACL_USER, ACL_PASS)
    for port in node_ports(redis_server):
        with redis.Redis(port=port) as r:
            r.execute_command("ACL", "DELUSER", ACL_USER)


def test_an_acl_user_with_the_minimal_acl_works_end_to_end(acl_url: str) -> None:
    end_to_end(acl_url, ACL_PREFIX)


def test_the_acl_user_cannot_reach_another_prefix_or_flush(acl_url: str, client: Client) -> None:
    client.deposit([Work(pipeline="theirs", id="t1")])  # another deployment, same server
    with Client(Settings(url=acl_url, prefix="other")) as c:
        with pytest.raises(ScriptError, match=r"NOPERM|permission"):
            c.deposit([Work(pipeline="secure")])
        with pytest.raises(redis.exceptions.NoPermissionError):
            c.redis.flushall()
    with Client(Settings(url=acl_url, prefix=ACL_PREFIX)) as mine:
        assert mine.pipelines() == []
    assert client.get("t1").status == "queued"


# -- TLS ------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=workflow test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client", "stranger"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    for name in ("server", "client"):
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt",
                cwd=d)  # fmt: skip
    # A certificate signed by nobody the server trusts: a CA of its own.
    openssl("req", "-x509", "-key", "stranger.key", "-days", "2", "-subj", "/CN=stranger CA",
            "-out", "stranger.crt", cwd=d)  # fmt: skip


class TlsServer:
    def __init__(self, server: PrivateServer, tls_port: int, certs: Path) -> None:
        self.server, self.tls_port, self.certs = server, tls_port, certs

    def url(self, ca: str = "ca.crt", client: str | None = "client") -> str:
        query = f"ssl_ca_certs={self.certs / ca}"
        if client:
            key = self.certs / client
            query += f"&ssl_certfile={key}.crt&ssl_keyfile={key}.key"
        return f"rediss://127.0.0.1:{self.tls_port}/0?{query}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A server speaking TLS only to clients with a certificate from the test CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificates for the TLS test")
    certs = tmp_path_factory.mktemp("certs")
    make_certs(certs)
    port = free_port()
    server = PrivateServer(tmp_path_factory.mktemp("tls"), extra_args=(
        "--tls-port", str(port), "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.crt"),
        "--tls-auth-clients", "yes",
    ))  # fmt: skip
    try:
        server.start()
    except WorkflowError as exc:
        log = (server.directory / "redis.log").read_text(errors="replace")
        if "tls" in (str(exc) + log).lower():
            pytest.skip(f"{server.binary} was built without TLS support: {exc}")
        raise
    try:
        yield TlsServer(server, port, certs)
    finally:
        server.stop()


@pytest.mark.standalone
def test_tls_with_certificates_in_the_url_works_end_to_end(tls_server: TlsServer) -> None:
    end_to_end(tls_server.url(), "wftls")


@pytest.mark.standalone
def test_tls_refuses_an_untrusted_server_or_a_client_without_certificate(
    tls_server: TlsServer,
) -> None:
    for url in (tls_server.url(ca="stranger.crt"), tls_server.url(client=None),
                tls_server.url(client="stranger")):  # fmt: skip
        with Client(Settings(url=url, prefix="wftls")) as c, pytest.raises(ConnectionError):
            c.withdraw("secure")  # not retried: one attempt


# -- two prefixes on one server ------------------------------------------------------------


def dump(c: Client, prefix: str) -> dict[bytes, Any]:
    """Every key of a deployment with its type and content (its whole state)."""
    out: dict[bytes, Any] = {}
    for key in c.redis.scan_iter(match=namespace_pattern(prefix), count=1000):
        kind = c.redis.type(key)
        read = {b"hash": c.redis.hgetall, b"zset": lambda k: c.redis.zrange(k, 0, -1,
                withscores=True), b"string": c.redis.get, b"set": c.redis.smembers,
                b"list": lambda k: c.redis.lrange(k, 0, -1),
                b"stream": c.redis.xrange}[kind]  # fmt: skip
        out[key] = (kind, read(key))
    return out


def test_two_prefixes_on_one_server_never_see_or_touch_each_other(client: Client, make_client):
    alpha, beta = make_client(prefix="alpha"), make_client(prefix="alpha2")  # "alpha" + 2
    for c, n in ((alpha, 3), (beta, 5)):
        c.deposit([Work(pipeline=p, id=f"{c.settings.prefix}-{p}-{i}", retries=0)
                   for p in ("shared", "other") for i in range(n)])  # fmt: skip
    [leased] = beta.withdraw("shared")
    beta.complete(leased, "success")
    before = dump(beta, "alpha2")
    assert before and all(k.startswith(b"alpha2:") for k in before)

    works = alpha.withdraw(["shared", "other"], count=100)  # alpha's works only
    assert len(works) == 6 and all(w.id.startswith("alpha-") for w in works)
    for w in works:
        alpha.complete(w, "failure")
    assert alpha.counts("shared")["failure"] == 3 and beta.counts("shared")["queued"] == 4
    assert [p.counts["success"] for p in snapshot(beta).pipelines] == [0, 1]  # other, shared
    assert sum(p.counts["failure"] for p in snapshot(alpha).pipelines) == 6
    info = WorkerInfo(name="a-worker", host="h", pid=1, pipelines=["shared"], function=None,
                      concurrency=1, started=0.0, beat=1.0)  # fmt: skip
    publish(alpha, info, ttl_s=30)
    assert list_workers(beta) == []
    with pytest.raises(WorkNotFound):
        alpha.get("alpha2-shared-1")
    alpha.retry("alpha-shared-0")
    assert alpha.cancel("alpha-shared-0") == "queued"
    alpha.delete("alpha-shared-1")
    alpha.delete_pipeline("other")
    assert alpha.purge() > 0 and alpha.pipelines() == []

    assert dump(beta, "alpha2") == before  # untouched, to the byte
    assert beta.pipelines() == ["other", "shared"] and beta.counts("other")["queued"] == 5
