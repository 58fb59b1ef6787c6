"""Benchmark: a hostile web set replayed against a real ``midiforge web`` on 127.0.0.1.

Targets (docs/benchmarks.md): no answer with a 5xx status; no byte written outside the output
folder; no job started by a refused request; the server's peak RSS during the set at most 1.5x
its idle RSS (idle = after one warm-up job, so the model code is loaded).

The script builds a temp tree (a tiny LSTM trained for 20 steps on 24 Nottingham tunes, a
broken run whose config holds a bad value, the output folder, the server's TMPDIR and working
folder), starts ``python -m midiforge web`` on a free port of 127.0.0.1 with
``--job-seconds 30``, and sends only to that address: path traversal in every path parameter
and in the form, odd numbers in every number field, over-long, NUL and bad-UTF-8 strings,
oversized, chunked, lying and trickling uploads, MIDI bombs, slow and idle clients, cross-site
posts and foreign Host headers. Every count is bounded and the server is stopped at the end.

    python bench/web_hostile.py
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from web_client import Client, midi, multipart

ROOT = Path(__file__).resolve().parents[1]
NOTTINGHAM = ROOT.parent / "shared" / "datasets" / "nottingham"
TINY = ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1", "train.steps=20",
        "train.lr=0.02", "train.warmup_steps=0", "train.batch_size=8", "train.seq_len=64",
        "train.eval_every=20", "train.eval_batches=1"]  # fmt: skip
JOB_SECONDS = 30
NUMBER_FIELDS = ("n", "length", "temperature", "top_k", "top_p", "noise", "steps", "guidance",
                 "seed", "primer_bars")  # fmt: skip
ODD_NUMBERS = ["²", "1" * 5000, "١٢٣", "1e400", "-1e400", "nan", "inf", "-0", "0x10", "1_000",
               " ", "\x00", "1\x00", "🎵", "1e-400", "9" * 30, "+", ".", "1,5", "½"]  # fmt: skip
TRAVERSAL = ["..", "../", "..%2f", "%2e%2e%2f", "..%5c", "%00", "a%00b", "..%2f..%2fetc%2fpasswd",
             "%2fetc%2fpasswd", "....%2f%2f", "%252e%252e%252f", "a" * 5000, "%ff%fe", "..;",
             "%c0%ae%c0%ae%2f", "%e2%80%a5", "~root", "%2e", "sample_000.mid%00.png",
             "..%2f..%2f..%2f..%2fproc%2fself%2fenviron"]  # fmt: skip
FORGED = "nonce.0123456789abcdef0123456789abcdef"  # a well-formed token this server never signed
SLOW_HEADS, SLOW_BODIES, IDLE = 20, 5, 10  # connections held at once: 35 (the server takes 64)


def build_tree(root: Path) -> dict[str, Path]:
    """The temp tree: a tiny trained run, a broken run, out/, tmp/ and cwd/ for the server."""
    from midiforge import api
    from midiforge.data.prepare import prepare

    src = root / "src"
    src.mkdir()
    for path in sorted(NOTTINGHAM.glob("*.mid"))[:24]:
        shutil.copy(path, src / path.name)
    prepare(src, root / "data", jobs=2, quiet=True, min_tokens=64, min_notes=16)
    api.train(root / "data", model="lstm", overrides=TINY, run_dir=root / "runs" / "tiny",
              device="cpu")  # fmt: skip
    (root / "runs" / "broken").mkdir()
    (root / "runs" / "broken" / "config.yaml").write_text("model: lstm\ntrain: {steps: many}\n")
    folders = {name: root / name for name in ("out", "tmp", "cwd")}
    for folder in folders.values():
        folder.mkdir()
    return {"runs": root / "runs", **folders}


def snapshot(root: Path, skip: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and not p.is_relative_to(skip)}  # fmt: skip


def wait_job(client: Client, job: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body, _ = client.send("poll", client.head("GET", f"/api/jobs/{job}", session=False))
        for status in ("done", "error", "cancelled"):
            if f'"status":"{status}"'.encode() in body:
                return status
        time.sleep(0.3)
    return "timeout"


def job_id(answer: tuple[int, bytes, int]) -> str:
    if answer[0] != 202:
        raise RuntimeError(f"a job was refused: {answer[0]} {answer[1][:300]!r}")
    return answer[1].split(b'"job":"')[1].split(b'"')[0].decode()


def probe_job(client: Client) -> int:
    """Submit a short job and cancel it: its id counts the jobs started so far."""
    job = job_id(client.form("probe", {"model": "tiny", "length": "16"}))
    client.send("probe", client.head("DELETE", f"/api/jobs/{job}"))
    return int(job)


def cancel_accepted(client: Client, answer: tuple[int, bytes, int]) -> None:
    if answer[0] == 202:  # an odd value the server read as a fine one: keep the worker free
        client.send("cancel", client.head("DELETE", f"/api/jobs/{job_id(answer)}"))


def traversal(c: Client, notes: dict, files: str) -> None:
    """Path traversal in every path parameter, in the model field and the primer's name."""
    notes["traversal_200"] = 0
    for payload in TRAVERSAL:
        for path in (f"/api/jobs/{payload}", files + payload, f"/static/{payload}",
                     f"/static/..%2f..%2f{payload}"):  # fmt: skip
            status = c.send("traversal", c.head("GET", path, session=False))[0]
            notes["traversal_200"] += status == 200
        c.send("traversal", c.head("DELETE", f"/api/jobs/{payload}"))
        cancel_accepted(c, c.form("traversal", {"model": payload.replace("%2f", "/")}))
        primer = (payload + ".mid", midi([(0, 480, 60)]))  # a name only quoted, never a path
        cancel_accepted(c, c.form("traversal", {"model": "tiny", "length": "16"}, primer))


def odd_values(c: Client) -> None:
    """Odd numbers in every number field; over-long, NUL, bad-UTF-8 and malformed forms."""
    for name in NUMBER_FIELDS:
        for value in ODD_NUMBERS:
            cancel_accepted(c, c.form("numbers", {"model": "tiny", "length": "16", name: value}))
    for fields in ({"model": "a" * 5000}, {"model": "tiny\x00"}, {"model": "ti\u202eny"},
                   {"model": b"ti\xffny"}, {"style": b"\xc3\x28"}, {"model": "broken"},
                   {"model": "tiny", "x" * 5000: "1"}, {"model": "tiny", "style": "s" * 60_000},
                   {"model": "tiny", **{f"f{i}": "1" for i in range(100)}}):  # fmt: skip
        c.form("strings", fields)
    for raw in (b'--BOUND\r\nContent-Disposition: form-data; name="model"\r\n\r\nti',
                b"no multipart here", multipart({"model": "tiny"}) * 2):  # fmt: skip
        cancel_accepted(c, c.form("strings", {}, raw=raw))  # after the end: an epilogue
    for kind in ("application/json", "text/plain", "", "multipart/form-data"):
        extra = {"Content-Type": kind, "Content-Length": "2"}
        c.send("strings", c.head("POST", "/api/generate", extra) + b"{}")


def uploads(c: Client, notes: dict) -> None:
    """Oversized, lying and chunked uploads, files that are not MIDI, and MIDI bombs."""
    real = (NOTTINGHAM / "ashover1.mid").read_bytes()
    for upload in (("big.mid", b"MThd" + bytes(600 * 1024)), ("notes.txt", b"hello"),
                   ("cut.mid", real[:30]), ("empty.mid", midi([]))):  # fmt: skip
        c.form("uploads", {"model": "tiny"}, upload)
    multi = "multipart/form-data; boundary=BOUND"
    c.send("uploads", c.head("POST", "/api/generate", {"Content-Length": str(10**10),
                                                       "Content-Type": multi}))  # fmt: skip
    frame = b"10000\r\n" + bytes(65536) + b"\r\n"
    extra = {"Transfer-Encoding": "chunked", "Content-Type": multi}
    head = c.head("POST", "/api/generate", extra)
    status, _, sent = c.send("uploads", head, (frame for _ in range(3200)))  # offers 200 MiB
    notes["chunked"] = (status, sent)
    c.send("uploads", head + b"zz\r\nnot hex\r\n")
    bombs = [("unison.mid", midi([(0, 480, 60)] * 5000)), ("tracks.mid", midi([(0, 1, 60)], 300)),
             ("long.mid", midi([(0, 2**30, 60)], tpq=1)),
             ("dense.mid", midi([(i, 1, 20 + i % 80) for i in range(40_000)])),
             ("cap.mid", midi([(i * 120, 120, 20 + i % 80) for i in range(2000)]))]  # fmt: skip
    for name, data in bombs:
        answer = c.form(
            "bombs", {"model": "tiny", "length": "64", "primer_bars": "0"}, (name, data)
        )
        notes[f"bomb {name}"] = answer[0]
        if answer[0] == 202:  # accepted: let it run within its budget, it must end cleanly
            notes[f"bomb {name}"] = f"202, job {wait_job(c, job_id(answer), JOB_SECONDS + 30)}"


def cross_origin(c: Client) -> None:
    """State-changing requests from other origins, or without the session's token."""
    port, own, token = c.port, f"http://127.0.0.1:{c.port}", c.token
    good = {"Origin": own, "Cookie": f"midiforge_csrf_{port}={token}", "X-CSRF-Token": token}
    bare = {k: v for k, v in good.items() if k != "Origin"}
    forged = [{**good, "Origin": "http://evil.example"}, {**good, "Origin": "null"},
              {**good, "Origin": f"http://127.0.0.1:{port + 1}"}, {**good, "Origin": own + ".x.y"},
              {**good, "Origin": f"http://localhost:{port}"}, bare,
              {**bare, "Referer": "http://evil.example/"}, {**bare, "Referer": f"{own}0/"},
              {k: v for k, v in good.items() if k != "X-CSRF-Token"},
              {k: v for k, v in good.items() if k != "Cookie"},
              {**good, "X-CSRF-Token": FORGED, "Cookie": f"midiforge_csrf_{port}={FORGED}"},
              ]  # fmt: skip
    body = multipart({"model": "tiny", "length": "16"})
    kind = {"Content-Type": "multipart/form-data; boundary=BOUND", "Content-Length": str(len(body))}
    for headers in forged:
        for method, path in (("POST", "/api/generate"), ("DELETE", "/api/jobs/1"),
                             ("PUT", "/api/generate"), ("PATCH", "/api/jobs/1")):  # fmt: skip
            c.send("cross-origin", c.head(method, path, {**headers, **kind}, session=False) + body)


def foreign_hosts(c: Client, files: str) -> None:
    """Foreign Host headers (DNS rebinding), no Host, and malformed HTTP."""
    port = c.port
    for host in ("rebound.example", f"rebound.example:{port}", f"127.0.0.1:{port + 1}", "",
                 "127.0.0.1\x00", "h" * 10_000, f"127.0.0.1:{port}@evil"):  # fmt: skip
        for path in ("/", "/api/models", files + "sample_000.mid"):
            c.send("foreign host", c.head("GET", path, host=host, session=False))
        c.form("foreign host", {"model": "tiny", "length": "16"}, host=host)
    c.send("foreign host", b"GET /api/models HTTP/1.0\r\n\r\n")  # no Host at all
    c.send("foreign host", b"GET http://evil.example/api/models HTTP/1.1\r\nHost: evil\r\n\r\n")
    own = f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),  # TLS
                    b"GET /api/jobs/\xff\xfe HTTP/1.1\r\n" + own + b"\r\n",
                    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + own + b"\r\n",
                    b"GET /api/models HTTP/1.1\r\n" + own + b"Host: evil\r\n\r\n",
                    b"GET / HTTP/1.1\r\n" + own + b"Cookie: \xff=\x00\r\n\r\n",
                    b"GET / HTTP/1.1\r\n" + own + b"X: " + b"x" * 40_000 + b"\r\n\r\n",
                    b"OPTIONS * HTTP/1.1\r\n" + own + b"\r\n"):  # fmt: skip
        c.send("malformed http", garbage)


def hostile_set(c: Client, job_done: str) -> dict:
    """Every group but the slow clients; returns what the report needs."""
    notes: dict = {}
    files = f"/api/jobs/{job_done}/files/"
    traversal(c, notes, files)
    odd_values(c)
    uploads(c, notes)
    before = probe_job(c)
    cross_origin(c)
    foreign_hosts(c, files)
    notes["jobs started by refused requests"] = probe_job(c) - before - 1
    return notes


def slow_clients(client: Client, results: dict) -> list[threading.Thread]:
    """Slow heads, trickling bodies and idle connections, held at once in threads."""

    def held(group: str, head: bytes, body, key: str) -> None:
        start = time.monotonic()
        client.send(group, head, body(), timeout=120)
        with client.lock:
            results.setdefault(key, []).append(time.monotonic() - start)

    def trickle(data: bytes, every: float):
        for i in range(len(data)):
            yield data[i : i + 1]
            time.sleep(every)

    head = client.head("GET", "/api/models", session=False)
    form = client.head("POST", "/api/generate", {"Content-Length": "1000",
                       "Content-Type": "multipart/form-data; boundary=BOUND"})  # fmt: skip
    short = client.head("POST", "/api/generate", {"Content-Length": "100"}) + b"x" * 50
    jobs = [("slow head", b"", lambda: trickle(head, 2.0), "head")] * SLOW_HEADS
    jobs += [("slow body", form, lambda: trickle(b"x" * 1000, 2.0), "body")] * SLOW_BODIES
    jobs += [("idle", b"", lambda: iter([]), "idle")] * IDLE
    jobs += [("short body", short, lambda: iter([]), "body")]  # says 100 bytes, sends 50
    threads = [threading.Thread(target=held, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    return threads


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="web_hostile_") as tmp, \
            tempfile.TemporaryDirectory(prefix="web_hostile_log_") as logs:  # fmt: skip
        root = Path(tmp)
        tree = build_tree(root)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cmd = [sys.executable, "-m", "midiforge", "web", "--port", str(port),
               "--runs-dir", str(tree["runs"]), "--out-dir", str(tree["out"]),
               "--job-seconds", str(JOB_SECONDS)]  # fmt: skip
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)  # the server runs in cwd/
        pythonpath = os.pathsep.join(str(Path(p).resolve()) for p in paths if p)
        env = {**os.environ, "TMPDIR": str(tree["tmp"]), "PYTHONPATH": pythonpath}
        log = open(Path(logs) / "server.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, cwd=tree["cwd"], env=env, stdout=log, stderr=subprocess.STDOUT)
        client = Client(port)
        try:
            return run(client, proc, root, tree)
        except Exception:
            log.flush()
            print((Path(logs) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def start_session(client: Client, proc: subprocess.Popen) -> str:
    """Wait for the server, take the page's CSRF token, run a warm-up job; its id."""
    deadline = time.monotonic() + 90
    while True:
        try:
            client.token = head_cookie(client)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.3)
    job = job_id(client.form("setup", {"model": "tiny", "length": "64", "seed": "1"}))
    if wait_job(client, job, 120) != "done":
        raise RuntimeError("the warm-up job failed")
    return job


def run(client: Client, proc: subprocess.Popen, root: Path, tree: dict) -> int:
    job = start_session(client, proc)
    server = psutil.Process(proc.pid)
    time.sleep(2.0)
    samples = []
    for _ in range(10):
        samples.append(server.memory_info().rss)
        time.sleep(0.1)
    idle = statistics.median(samples)
    before = snapshot(root, tree["out"])
    peak, sampling = [idle], threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            peak[0] = max(peak[0], server.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    held: dict = {}
    threads = slow_clients(client, held)
    time.sleep(1.0)
    latencies = []
    for _ in range(5):  # the page still answers while the slow clients hold their sockets
        t0 = time.monotonic()
        client.send("during slow clients", client.head("GET", "/api/models", session=False))
        latencies.append(time.monotonic() - t0)
    try:
        notes = hostile_set(client, job)
        for thread in threads:
            thread.join(150)
    finally:
        sampling.set()
    sampler.join()
    seconds = time.monotonic() - start
    changed = [p for p, v in snapshot(root, tree["out"]).items() if before.get(p) != v]
    report(client, notes, held, latencies, changed, idle, peak[0], seconds, proc.poll())
    return 1 if client.server_errors or changed or peak[0] > 1.5 * idle else 0


def head_cookie(client: Client) -> str:
    """The CSRF token the page's answer sets (its Set-Cookie header)."""
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
        sock.sendall(client.head("GET", "/", session=False))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    line = next(ln for ln in data.split(b"\r\n") if ln.lower().startswith(b"set-cookie:"))
    return line.split(b"=", 1)[1].split(b";")[0].decode()


def report(client, notes, held, latencies, changed, idle, peak, seconds, exit_code) -> None:
    groups = sorted({g for g, _ in client.counts} - {"setup", "poll", "probe", "cancel"})
    print(
        f"{'group':<20} {'requests':>8} {'2xx':>5} {'3xx':>5} {'4xx':>5} {'5xx':>5} {'closed':>7}"
    )
    for group in groups:
        row = [client.counts[(group, k)] for k in (2, 3, 4, 5, 0)]
        cells = " ".join(f"{n:>5}" for n in row[:4])
        print(f"{group:<20} {sum(row):>8} {cells} {row[4]:>7}")
    tried = sum(n for (g, _), n in client.counts.items() if g in groups)
    every = sum(client.counts.values())
    fivexx = sum(n for (_, k), n in client.counts.items() if k == 5)
    print(f"requests tried: {tried} hostile, {every} with setup, probes and polls, in "
          f"{seconds:.0f} s; 5xx answers: {fivexx}")  # fmt: skip
    for line in client.server_errors[:5]:
        print("  ", line)
    status, sent = notes.pop("chunked")
    print(f"chunked upload offering 200 MiB: {status} after the client sent {sent / 2**20:.1f} MiB")
    print(f"path traversal answered 200: {notes.pop('traversal_200')}")
    for key, value in notes.items():
        print(f"{key}: {value}")
    for key in ("head", "body", "idle"):
        times = held.get(key, [])
        print(f"slow clients ({key}): {len(times)} cut off after at most {max(times):.1f} s")
    print(f"/api/models while they were held: at most {max(latencies) * 1000:.0f} ms")
    size = sum(p.stat().st_size for p in changed if p.exists())
    print(f"bytes written outside the output folder: {size} ({len(changed)} files)")
    print(f"server RSS: idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB "
          f"({peak / idle:.2f}x; target <= 1.5x)")  # fmt: skip
    print(f"server still running at the end: {exit_code is None}")


if __name__ == "__main__":
    raise SystemExit(main())
