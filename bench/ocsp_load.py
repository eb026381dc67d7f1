#!/usr/bin/env python3
"""Load, abuse and soak runs against a real ocsp-responder (bench/abuse.sh, bench/soak.sh call this).

Python's standard library only (Debian's python3): raw sockets, so every byte on the wire is ours; DER built
and read by hand; the openssl CLI makes the PKI and the CRLs (scripts/make-demo-pki.sh, `openssl ca
-gencrl`) and verifies a sample of the responses' signatures.

  ocsp_load.py abuse --bin-dir DIR --work DIR [--seconds S] [--attacks a,b,...] [--unknown-serials N]
  ocsp_load.py soak  --bin-dir DIR --work DIR [--seconds S] [--import-every S]

Exit status: 0 the run completed and its checks held, 1 a check failed, 2 bad usage or set-up failure.
"""
import argparse
import hashlib
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD, REVOKED, UNKNOWN = "good", "revoked", "unknown"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- DER ---------------------------------------------------------------------------------------------------
def der_len(n):
    if n < 0x80:
        return bytes([n])
    out = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(out)]) + out


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def der_int(value):
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    while len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return tlv(0x02, body)


def read_tlv(data, at):
    """(tag, content_start, content_end) of the element at `at`."""
    tag = data[at]
    first = data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def children(data, start, end):
    out = []
    while start < end:
        tag, cs, ce = read_tlv(data, start)
        out.append((tag, cs, ce))
        start = ce
    return out


class Pki:
    """The demo PKI (scripts/make-demo-pki.sh) plus CRLs made with `openssl ca -gencrl` from our own index."""

    def __init__(self, directory):
        self.dir = directory
        if not os.path.exists(os.path.join(directory, "ca.pem")):
            subprocess.run(["bash", os.path.join(ROOT, "scripts/make-demo-pki.sh"), directory], check=True,
                           stdout=subprocess.DEVNULL)
        # The CertID hashes, from a request the openssl CLI builds: SHA-1 of the issuer name and key.
        req = os.path.join(directory, "template.req")
        subprocess.run(["openssl", "ocsp", "-issuer", os.path.join(directory, "ca.pem"), "-serial", "0x1001",
                        "-no_nonce", "-reqout", req], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        data = open(req, "rb").read()
        hashes = [m.start() for m in re.finditer(re.escape(b"\x04\x14"), data)]
        self.name_hash = data[hashes[0] + 2:hashes[0] + 22]
        self.key_hash = data[hashes[1] + 2:hashes[1] + 22]
        self.crl_number = 100

    def request(self, serial):
        """A DER OCSPRequest for one serial, SHA-1 CertID, no nonce."""
        sha1 = tlv(0x30, tlv(0x06, bytes.fromhex("2b0e03021a")) + b"\x05\x00")
        cert_id = tlv(0x30, sha1 + tlv(0x04, self.name_hash) + tlv(0x04, self.key_hash) + der_int(serial))
        return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id))))

    def make_crl(self, revoked, out, reason_of=lambda serial: "keyCompromise"):
        """A CRL revoking `revoked` (serial -> revocation unix time), with the next CRL number."""
        self.crl_number += 1
        db = os.path.join(self.dir, "ca-db")
        with open(os.path.join(db, "index.txt"), "w") as index:
            for serial in sorted(revoked):
                when = time.strftime("%y%m%d%H%M%SZ", time.gmtime(revoked[serial]))
                hexa = f"{serial:X}"
                hexa = "0" * (len(hexa) % 2) + hexa
                index.write(f"R\t351231000000Z\t{when},{reason_of(serial)}\t{hexa}\tunknown\t/CN=x{serial}\n")
        with open(os.path.join(db, "crlnumber"), "w") as number:
            number.write(f"{self.crl_number:04X}\n")
        open(os.path.join(db, "index.txt.attr"), "w").write("unique_subject = no\n")
        pem = out + ".pem"
        subprocess.run(["openssl", "ca", "-batch", "-gencrl", "-config", os.path.join(db, "openssl.cnf"), "-name",
                        "crl1", "-crldays", "7", "-out", pem], cwd=self.dir, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "crl", "-in", pem, "-outform", "DER", "-out", out], check=True)
        return out


def parse_response(body):
    """(response_status, [(serial, status)]) from a DER OCSPResponse; signature not checked here."""
    _, s, e = read_tlv(body, 0)
    parts = children(body, s, e)
    status = body[parts[0][1]]
    if status != 0:
        return status, []
    _, bs, be = read_tlv(body, parts[1][1])             # [0] EXPLICIT ResponseBytes
    rb = children(body, bs, be)                          # SEQUENCE { responseType, response }
    _, os_, oe = rb[1][1], rb[1][1], rb[1][2]
    basic = body[os_:oe]
    _, s, e = read_tlv(basic, 0)
    _, ts, te = read_tlv(basic, s)                       # tbsResponseData
    fields = children(basic, ts, te)
    if fields[0][0] == 0xA0:                             # version
        fields = fields[1:]
    responses = children(basic, fields[2][1], fields[2][2])
    answers = []
    for _, rs, re_ in responses:
        single = children(basic, rs, re_)
        cert_id = children(basic, single[0][1], single[0][2])
        serial = int.from_bytes(basic[cert_id[3][1]:cert_id[3][2]], "big")
        tag = single[1][0]
        answers.append((serial, GOOD if tag == 0x80 else REVOKED if tag == 0xA1 else UNKNOWN))
    return 0, answers


# --- HTTP --------------------------------------------------------------------------------------------------
def post_bytes(der, keep_alive=True):
    head = "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/ocsp-request\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return (head + f"Content-Length: {len(der)}\r\n\r\n").encode() + der


# Source addresses. All of 127.0.0.0/8 is loopback on Linux, so each client can come from its own address, as
# in a real deployment: the legitimate client (and the soak's clients) from 127.0.0.1, attackers from 127.0.0.2
# on. Otherwise the responder's per-address connection cap cannot tell them apart.
LEGIT_SOURCE = "127.0.0.1"
PER_ADDRESS_CAP = 256  # the responder's max_connections_per_address (its default), written to its configuration


def attacker_source(index):
    """The index-th attacker address: 127.0.0.2, 127.0.0.3, ..."""
    index += 2
    return f"127.0.{index // 256}.{index % 256}" if index >= 256 else f"127.0.0.{index}"


IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; Python's socket module does not name it


def connect(port, source, timeout):
    """A connection from `source`. The port is chosen by connect(), not bind(): bind() to port 0 must find a
    port that no socket of that address holds, TIME_WAIT included, and after a flood's tens of thousands of
    connections that search ran for milliseconds in the attacker's kernel time, where a PREEMPT_NONE kernel
    does not preempt it, so the responder's wake-ups waited a 4 ms tick behind it (perf sched timehist).
    connect() may reuse a loopback TIME_WAIT port (net.ipv4.tcp_tw_reuse's default)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        return s
    except BaseException:
        s.close()
        raise


class Connection:
    """A keep-alive client from `source`; reconnects when the server closes."""

    def __init__(self, port, timeout=10.0, source=LEGIT_SOURCE):
        self.port, self.timeout, self.source, self.sock, self.buffer = port, timeout, source, None, b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def round_trip(self, request):
        """(http_status, body); raises OSError on a connection failure."""
        for attempt in (0, 1):
            if self.sock is None:
                self.sock = connect(self.port, self.source, self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(request)
                return self._read()
            except (ConnectionError, EOFError):
                self.close()
                if attempt == 1:
                    raise
        raise OSError("unreachable")

    def _read(self):
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        while len(rest) < length:
            self.buffer = head + b"\r\n\r\n" + rest
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        body, self.buffer = rest[:length], rest[length:]
        if close:
            self.close()
        return status, body

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed by the server")
        self.buffer += chunk


# --- the responder -----------------------------------------------------------------------------------------
class Responder:
    def __init__(self, bin_dir, work, pki, workers=2, signer_threads=2, http_timeout=30):
        self.bin_dir, self.work, self.pki = bin_dir, work, pki
        self.store = os.path.join(work, "store")
        shutil.rmtree(self.store, ignore_errors=True)
        self.config = os.path.join(work, "ocsp-responder.toml")
        with open(self.config, "w") as config:
            config.write(f"""[responder]
listen = "127.0.0.1:0"
http_timeout_seconds = {http_timeout}
max_connections_per_address = {PER_ADDRESS_CAP}
workers = {workers}
signer_threads = {signer_threads}
[store]
path = "{self.store}"
map_size_mib = 1024
[metrics]
listen = ""
[import]
max_shrink_fraction = 1.0
[[issuer]]
name = "bench-ca"
certificate = "{pki.dir}/ca.pem"
responder_certificate = "{pki.dir}/responder.pem"
responder_key = "{pki.dir}/responder.key"
""")
        self.process = None
        self.port = None

    def import_crl(self, path):
        started = time.time()
        result = subprocess.run([os.path.join(self.bin_dir, "ocspctl"), "--config", self.config, "import", "--issuer",
                                 os.path.join(self.pki.dir, "ca.pem"), path],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"import of {path} failed: {result.stdout}{result.stderr}")
        return started, time.time()

    def start(self, fd_limit=None):
        self.log_path = os.path.join(self.work, "responder.log")
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen([os.path.join(self.bin_dir, "ocsp-responder"), "--config", self.config],
                                        stdout=self.log_file, stderr=subprocess.STDOUT,
                                        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                               (fd_limit, fd_limit)))
                                        if fd_limit else None)
        deadline = time.time() + 20
        while time.time() < deadline:
            match = re.search(r"event=listening address=127\.0\.0\.1:(\d+)", open(self.log_path).read())
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the responder did not start:\n" + open(self.log_path).read())

    def rss_kib(self):
        return self.memory_kib()["VmRSS"]

    def memory_kib(self):
        """VmRSS and its parts: RssAnon (heap, stacks: what the process allocated), RssFile (file pages mapped,
        mostly the store's LMDB map: the kernel's cache, shared, dropped under pressure), RssShmem."""
        out = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    name = line.split(":")[0]
                    if name in out:
                        out[name] = int(line.split()[1])
        except OSError:
            pass
        return out

    def cpu_seconds(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the legitimate client ---------------------------------------------------------------------------------
class LegitClient(threading.Thread):
    """One keep-alive client asking for a good and a revoked serial in turn, at most `rate` requests/s."""

    def __init__(self, port, pki, expected, rate=100):
        super().__init__(daemon=True)
        self.port, self.pki, self.expected, self.rate = port, pki, expected, rate
        self.stop_flag = threading.Event()
        self.latencies, self.ok, self.failed, self.try_later, self.wrong = [], 0, 0, 0, 0
        self.errors = []

    def run(self):
        connection = Connection(self.port, timeout=5.0)
        serials = list(self.expected)
        requests = {serial: post_bytes(self.pki.request(serial)) for serial in serials}
        i = 0
        while not self.stop_flag.is_set():
            serial = serials[i % len(serials)]
            i += 1
            started = time.perf_counter()
            try:
                status, body = connection.round_trip(requests[serial])
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                response_status, answers = parse_response(body) if status == 200 else (-1, [])
                if response_status == 3:
                    self.try_later += 1
                elif response_status != 0:
                    self.failed += 1
                    self.errors.append(f"HTTP {status} OCSP {response_status}")
                elif answers != [(serial, self.expected[serial])]:
                    self.wrong += 1
                    self.errors.append(f"wrong answer {answers} for {serial:#x}")
                else:
                    self.ok += 1
            except (OSError, EOFError, ValueError, IndexError) as error:
                self.latencies.append(time.perf_counter() - started)
                self.failed += 1
                self.errors.append(f"{type(error).__name__}: {error}")
                connection.close()
            pause = 1.0 / self.rate - (time.perf_counter() - started)
            if pause > 0:
                time.sleep(pause)
        connection.close()

    def summary(self):
        if getattr(self, "_summary", None) is not None:
            return self._summary
        total = self.ok + self.failed + self.try_later + self.wrong
        lat = sorted(self.latencies) or [0.0]
        return {"requests": total, "success": 100.0 * self.ok / total if total else 0.0,
                "p50": 1000 * lat[len(lat) // 2], "p99": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "try_later": self.try_later, "failed": self.failed, "wrong": self.wrong}


def run_in_threads(run, threads):
    """run(0) ... run(threads - 1), each on a thread of its own; returns when all have."""
    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


# --- attacks -----------------------------------------------------------------------------------------------
def attack_idle(port, stop, stats, sources, count=2000):
    """Connections that connect and never send a byte, spread over `sources` in turn."""
    socks = []
    for i in range(count):
        try:
            socks.append(connect(port, sources[i % len(sources)], timeout=2))
        except OSError:
            stats["refused"] = stats.get("refused", 0) + 1
    stats["open"] = len(socks)
    stop.wait()
    # What each connection got: refused over a cap (503 at once), closed by the idle timeout (EOF, nothing
    # sent), or still open.
    outcomes = {}
    for s in socks:
        outcome = ended(s)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        s.close()
    stats["ended"] = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))


class PacedClient:
    """The second legitimate client: ocsp-load (C++, one epoll loop) at a fixed rate over two keep-alive
    connections from 127.0.0.1, asking for the good and the revoked serial of the abuse CRL. The Python client
    checks every answer, but its own p99 is about 0.6 ms with nothing else running (the interpreter, and its
    sleep between requests); this one measures each request from its scheduled send time, so its p99 is the
    responder's and the machine's, with no coordinated omission. Not run when the build has no ocsp-load."""

    RATE = 1000

    def __init__(self, bin_dir, port, pki, seconds, scheduling="normal"):
        self.process = None
        tool = os.path.join(bin_dir, "ocsp-load")
        if not os.access(tool, os.X_OK):
            return
        self.process = subprocess.Popen(
            [tool, "--port", str(port), "--issuer", os.path.join(pki.dir, "ca.pem"), "--serials", "2",
             "--serial-base", str(0x1001), "--zipf", "0", "--rate", str(self.RATE), "--connections", "2",
             "--duration", str(seconds), "--window", str(seconds), "--scheduling", scheduling],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self):
        """Waits for the run's end; its summary: requests, success (%), p50 and p99 (ms), or "-"."""
        missing = {"requests": "-", "success": "-", "p50": "-", "p99": "-", "scheduling": "-"}
        if self.process is None:
            return missing
        out, err = self.process.communicate(timeout=120)
        line = next((l for l in out.splitlines() if l.startswith("summary ")), None)
        if line is None:
            log(f"ocsp-load gave no summary (exit {self.process.returncode}): {err.strip()[:200]}")
            return missing
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        requests = int(fields["requests"])
        failed = int(fields["errors"]) + int(fields["other_status"]) + round(
            requests * float(fields["trylater_pct"]) / 100)
        return {"requests": requests,
                "success": f"{100.0 * (requests - failed) / requests:.1f}%" if requests else "-",
                "p50": f"{float(fields['p50_ms']):.2f}", "p99": f"{float(fields['p99_ms']):.2f}",
                "scheduling": fields.get("scheduling", "normal")}


class LegitProcess:
    """LegitClient in a process of its own, forked before the attack starts: in one process the attackers'
    threads would delay its requests through the GIL, and its latencies would measure Python, not the
    responder. Same interface as LegitClient (start, stop_flag, join, summary, errors)."""

    def __init__(self, port, pki, expected, rate=100):
        context = multiprocessing.get_context("fork")
        self.stop_flag = context.Event()
        self._go = context.Event()
        self._results = context.Queue()
        self._client = LegitClient(port, pki, expected, rate)
        self._process = context.Process(target=self._run, daemon=True)
        self._process.start()
        self.errors = []
        self._summary = None

    def _run(self):
        self._go.wait()
        self._client.stop_flag = self.stop_flag
        self._client.run()
        self._results.put((self._client.summary(), self._client.errors[:3]))

    def start(self):
        self._go.set()

    def join(self):
        self._summary, self.errors = self._results.get(timeout=60)
        self._process.join(10)

    def summary(self):
        return self._summary


def ended(s):
    """How the server ended an attacker's connection, read without blocking: "503", "408"... (the status it
    sent before closing), "closed" (EOF, nothing sent), "reset", or "open"."""
    s.setblocking(False)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        if not data:
            return "open"
    except OSError:
        return "reset" if not data else data[9:12].decode("latin-1")
    if data.startswith(b"HTTP/1."):
        return data[9:12].decode("latin-1")
    return "closed" if not data else "other"


def attack_slowloris(port, stop, stats, sources, count=500):
    """Connections that send a request one header line at a time, one byte a second, forever."""
    socks = []
    for i in range(count):
        try:
            s = connect(port, sources[i % len(sources)], timeout=2)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            stats["refused"] = stats.get("refused", 0) + 1
    stats["open"] = len(socks)
    outcomes = {}
    while not stop.wait(1.0):
        alive = []
        for s in socks:
            try:
                s.sendall(b"X")
                alive.append(s)
            except OSError:
                outcome = ended(s)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                s.close()
        socks = alive
    for s in socks:
        outcome = ended(s)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        s.close()
    stats["ended"] = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))


def attack_flood(port, stop, stats, sources, threads=4):
    """Connect and close as fast as possible."""
    counts = [0] * threads

    def run(i):
        source = sources[i % len(sources)]
        while not stop.is_set():
            try:
                connect(port, source, timeout=2).close()
                counts[i] += 1
            except OSError:
                pass
    run_in_threads(run, threads)
    stats["connections"] = sum(counts)


def one_shot_attack(port, stop, stats, sources, make_payload, threads=2):
    counts = [0] * threads
    replies = {}
    lock = threading.Lock()

    def run(i):
        rng = random.Random(i)
        source = sources[i % len(sources)]
        while not stop.is_set():
            try:
                s = connect(port, source, timeout=5)
                try:
                    s.sendall(make_payload(rng))
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                data = b""
                reset = False
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    reset = True
                s.close()
                counts[i] += 1
                # "closed": an end of stream without a reply (an incomplete request when we half-closed).
                code = (data[9:12].decode("latin-1") if data.startswith(b"HTTP/1.")
                        else "reset" if reset else "closed" if not data else "?")
                with lock:
                    replies[code] = replies.get(code, 0) + 1
            except OSError:
                pass
    run_in_threads(run, threads)
    stats["sent"] = sum(counts)
    stats["replies"] = ", ".join(f"{k}: {v}" for k, v in sorted(replies.items()))


def attack_garbage(port, stop, stats, sources):
    one_shot_attack(port, stop, stats, sources, lambda rng: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))


def attack_oversize(port, stop, stats, sources):
    def payload(rng):
        if rng.random() < 0.5:
            return b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
        return (b"POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 1000000000\r\n\r\n"
                + b"x" * 1048576)
    one_shot_attack(port, stop, stats, sources, payload)


def attack_pipelined(port, stop, stats, sources, pki, threads=2, depth=100):
    """Connections that send `depth` requests at once, then read all the answers."""
    counts = [0] * threads

    def run(i):
        rng = random.Random(i)
        source = sources[i % len(sources)]
        while not stop.is_set():
            burst = b"".join(post_bytes(pki.request(rng.randint(0x1001, 0x1006))) for _ in range(depth))
            try:
                s = connect(port, source, timeout=10)
                s.sendall(burst + b"GET /healthz HTTP/1.1\r\nHost: ocsp\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                s.close()
                counts[i] += data.count(b"HTTP/1.1 200")
            except OSError:
                pass
    run_in_threads(run, threads)
    stats["answered"] = sum(counts)


def attack_unknown_serials(port, stop, stats, sources, pki, limit, threads=4):
    """Distinct serials never seen before (absent from the CRL: answered good, each signed afresh)."""
    next_serial = [10_000_000]
    lock = threading.Lock()
    done = [0]
    statuses = {}

    def run(i):
        connection = Connection(port, source=sources[i % len(sources)])
        while not stop.is_set():
            with lock:
                if next_serial[0] - 10_000_000 >= limit:
                    return
                serial = next_serial[0]
                next_serial[0] += 1
            try:
                status, body = connection.round_trip(post_bytes(pki.request(serial)))
                if status != 200:
                    key = f"HTTP {status}"
                else:
                    response_status, answers = parse_response(body)
                    key = answers[0][1] if response_status == 0 else f"status {response_status}"
            except (OSError, EOFError, ValueError, IndexError):
                key = "error"
                connection.close()
            with lock:
                done[0] += 1
                statuses[key] = statuses.get(key, 0) + 1
    run_in_threads(run, threads)
    stats["distinct serials"] = done[0]
    stats["answers"] = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))


ATTACKS = ["baseline", "idle", "fd-exhaustion", "slowloris", "flood", "garbage", "oversize", "pipelined", "unknown-serials"]


def attacker_thread(target, priority):
    """The attack's thread, at SCHED_IDLE unless `priority` is "normal": its sub-threads inherit the policy.
    A real attacker spends its own machines' CPU; here the attackers share the responder's two cores, and at
    normal priority Python's attack loops keep both busy, so the legitimate client's latency would measure
    the run queue rather than the responder. At SCHED_IDLE they take every cycle nothing else wants: the
    responder still has to read, parse and refuse all they send."""
    def run():
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread on Linux
        target()
    return run


def abuse(args):
    raise_fd_limit()
    pki = Pki(os.path.join(args.work, "pki"))
    now = int(time.time())
    revoked = {0x1002: now - 7200, 0x1003: now - 7200}
    crl = pki.make_crl(revoked, os.path.join(args.work, "abuse.der"))
    responder = Responder(args.bin_dir, args.work, pki, args.workers, args.signer_threads, args.http_timeout)
    responder.import_crl(crl)
    responder.start(args.fd_limit)
    log(f"responder pid {responder.process.pid} on port {responder.port}, "
        f"{args.workers} workers, {args.signer_threads} signer threads; attackers at {args.attacker_priority} "
        f"priority; fd limit "
        f"{open(f'/proc/{responder.process.pid}/limits').read().split('Max open files')[1].split()[0]}")
    expected = {0x1001: GOOD, 0x1002: REVOKED}
    rows = []
    ok = True
    stalls_before = machine_stalls(args.bin_dir)
    attacks = args.attacks.split(",") if args.attacks else ATTACKS
    # More idle connections than the open-file limit need more than one address past the per-address cap.
    fd_addresses = max(args.attacker_addresses, -(-(args.fd_limit + 200) // (PER_ADDRESS_CAP - 10)))
    for number, name in enumerate(attacks):
        if name not in ATTACKS:
            log(f"unknown attack {name}")
            return 2
        # Each attack from addresses of its own: the connections an attack closes stay in TIME_WAIT on its
        # side for a minute, and a flood's tens of thousands from one address would leave the next attack
        # from it no ephemeral port to connect from.
        first = number * max(args.attacker_addresses, fd_addresses)
        sources = [attacker_source(first + i) for i in range(args.attacker_addresses)]
        fd_sources = [attacker_source(first + i) for i in range(fd_addresses)]
        time.sleep(1)
        memory_before = responder.memory_kib()
        cpu_before = responder.cpu_seconds()
        stop = threading.Event()
        stats = {}
        target = {
            "baseline": lambda: stop.wait(),
            "idle": lambda: attack_idle(responder.port, stop, stats, sources),
            "fd-exhaustion": lambda: attack_idle(responder.port, stop, stats, fd_sources, args.fd_limit + 200),
            "slowloris": lambda: attack_slowloris(responder.port, stop, stats, sources),
            "flood": lambda: attack_flood(responder.port, stop, stats, sources),
            "garbage": lambda: attack_garbage(responder.port, stop, stats, sources),
            "oversize": lambda: attack_oversize(responder.port, stop, stats, sources),
            "pipelined": lambda: attack_pipelined(responder.port, stop, stats, sources, pki),
            "unknown-serials": lambda: attack_unknown_serials(responder.port, stop, stats, sources, pki,
                                                              args.unknown_serials),
        }[name]
        used = fd_sources if name == "fd-exhaustion" else sources
        if name != "baseline":
            stats["from"] = used[0] if len(used) == 1 else f"{used[0]}-{used[-1]}"
        client = LegitProcess(responder.port, pki, expected)  # forked while no attacker thread runs
        attacker = threading.Thread(target=attacker_thread(target, args.attacker_priority), daemon=True)
        attacker.start()
        time.sleep(1 if name in ("idle", "fd-exhaustion", "slowloris") else 0.2)  # let the connections open first
        # Idle connections: long enough for the server's idle timeout to close them.
        seconds = args.seconds * (6 if name == "unknown-serials" else 1)
        if name in ("idle", "fd-exhaustion", "slowloris"):
            seconds = max(seconds, args.http_timeout + 5)
        client.start()
        paced = PacedClient(args.bin_dir, responder.port, pki, seconds, args.paced_scheduling)
        attack_started = time.time()
        deadline = attack_started + seconds
        peak_fds = 0
        while time.time() < deadline and (name != "unknown-serials" or attacker.is_alive()):
            peak_fds = max(peak_fds, responder.fds() if responder.alive() else 0)
            time.sleep(0.2)
        client.stop_flag.set()
        client.join()
        summary = client.summary()
        summary["paced"] = paced.finish()
        stop.set()
        attacker.join(30)
        time.sleep(0.5)
        alive = responder.alive()
        summary["cpu"] = responder.cpu_seconds() - cpu_before if alive else 0.0
        summary["seconds"] = round(time.time() - attack_started)
        # Recovery: once the attack has stopped, a fresh connection is answered at once.
        try:
            status, body = Connection(responder.port, timeout=5).round_trip(post_bytes(pki.request(0x1002), False))
            if status != 200:
                stats["then"] = f"NOT ANSWERED (HTTP {status})"
                ok = False
            elif parse_response(body)[1] == [(0x1002, REVOKED)]:
                stats["then"] = "answered"
            else:
                stats["then"] = "WRONG ANSWER"
                ok = False
        except (OSError, EOFError, ValueError, IndexError) as error:
            stats["then"] = f"NOT ANSWERED ({type(error).__name__}: {error})"
            ok = False
        memory_after = responder.memory_kib() if alive else {}
        rows.append((name, summary, memory_before, memory_after, peak_fds, stats, alive))
        log(f"{name}: {summary} {stats} alive={alive}")
        for error in client.errors[:3]:
            log(f"  legit client error: {error}")
        if not alive:
            ok = False
            break
    responder.stop()
    stalls_after = machine_stalls(args.bin_dir)
    print()
    print(f"| attack | s | legit requests | legit success | legit p50 ms | legit p99 ms | paced requests | "
          f"paced success | paced p50 ms | paced p99 ms | responder CPU s | "
          f"RssAnon before → after (MiB) | RssFile before → after (MiB) | peak fds | attack |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|")
    for name, s, before, after, fds, stats, alive in rows:
        attack = "; ".join(f"{k} {v}" for k, v in stats.items()) or "-"
        if not alive:
            attack += "; RESPONDER DIED"

        def mib(kind):
            return f"{before.get(kind, 0) / 1024:.1f} → {after.get(kind, 0) / 1024:.1f}"
        p = s["paced"]
        print(f"| {name} | {s['seconds']} | {s['requests']} | {s['success']:.1f}% | {s['p50']:.2f} | {s['p99']:.2f} | "
              f"{p['requests']} | {p['success']} | {p['p50']} | {p['p99']} | {s['cpu']:.1f} | {mib('RssAnon')} | {mib('RssFile')} | {fds} | {attack} |")
    print()
    print(f"paced client's scheduling: {', '.join(sorted({r[1]['paced']['scheduling'] for r in rows})) or '-'}")
    print(f"machine stalls (stall-probe: a thread spinning on each core for 5 s) before the attacks: {stalls_before}")
    print(f"  after: {stalls_after}")
    return 0 if ok else 1


def machine_stalls(bin_dir):
    """What the machine itself takes from a running thread, per core (bench/stall_probe.cpp): a floor under
    every tail latency measured here."""
    tool = os.path.join(bin_dir, "stall-probe")
    if not os.access(tool, os.X_OK):
        return f"(no stall-probe in {bin_dir})"
    run = subprocess.run([tool, "--seconds", "5"], capture_output=True, text=True)
    parts = []
    for line in run.stdout.splitlines():
        v = dict(item.split("=", 1) for item in line.split())
        parts.append(f"cpu{v['cpu']} {v['lost_pct']}% lost in {v['stalls']} stalls over {v['threshold_us']} us "
                     f"({v['stalls_over_1ms']} over 1 ms), longest {v['longest_ms']} ms")
    parts += [line for line in run.stderr.splitlines() if line]
    return "; ".join(parts) or "-"


# --- soak --------------------------------------------------------------------------------------------------
def soak(args):
    raise_fd_limit()
    pki = Pki(os.path.join(args.work, "pki"))
    now = int(time.time())
    rng = random.Random(1)
    # A base of revoked serials, and probes that flip between the two alternating CRLs.
    base = {s: now - 86400 for s in rng.sample(range(0x100000, 0x200000), args.entries)}
    flip = rng.sample([s for s in range(0x300000, 0x310000)], 200)
    stable_good = rng.sample([s for s in range(0x400000, 0x410000)], 50)
    stable_revoked = list(base)[:50]
    set_a = {**base, **{s: now - 3600 for s in flip[:100]}}
    set_b = {**base, **{s: now - 3600 for s in flip[100:]}}
    imports = max(1, args.seconds // args.import_every)
    log(f"making {imports + 1} CRLs of {len(set_a)} entries")
    crls = [pki.make_crl(set_a if k % 2 == 0 else set_b, os.path.join(args.work, f"soak-{k}.der"))
            for k in range(imports + 1)]
    responder = Responder(args.bin_dir, args.work, pki, args.workers, args.signer_threads)
    responder.import_crl(crls[0])
    responder.start()
    probes = flip + stable_good + stable_revoked

    timeline = [(0.0, 0.0, "A")]  # (import started, import finished, set after)
    timeline_lock = threading.Lock()
    records = []  # (sent, received, serial, status or error)
    records_lock = threading.Lock()
    stop = threading.Event()
    sampled = []

    def truth(name, serial):
        revoked = (set_a if name == "A" else set_b)
        return REVOKED if serial in revoked else GOOD

    def load(index):
        connection = Connection(responder.port)
        local = random.Random(index)
        out = []
        while not stop.is_set():
            serial = local.choice(probes)
            sent = time.time()
            try:
                status, body = connection.round_trip(post_bytes(pki.request(serial)))
                received = time.time()
                if status != 200:
                    out.append((sent, received, serial, f"HTTP {status}"))
                    continue
                response_status, answers = parse_response(body)
                if response_status == 3:
                    out.append((sent, received, serial, "tryLater"))
                elif response_status != 0 or len(answers) != 1 or answers[0][0] != serial:
                    out.append((sent, received, serial, f"OCSP status {response_status} {answers}"))
                else:
                    out.append((sent, received, serial, answers[0][1]))
                    if local.random() < 0.0005 and len(sampled) < 200:
                        sampled.append((serial, body))
            except (OSError, EOFError, ValueError, IndexError) as error:
                out.append((sent, time.time(), serial, f"error {type(error).__name__}: {error}"))
                connection.close()
            if args.rate:
                time.sleep(max(0.0, 1.0 / args.rate - (time.time() - sent)))
        with records_lock:
            records.extend(out)

    def importer():
        for k in range(1, imports + 1):
            if stop.wait(args.import_every):
                return
            started, finished = responder.import_crl(crls[k])
            with timeline_lock:
                timeline.append((started, finished, "A" if k % 2 == 0 else "B"))
            log(f"import {k}/{imports} ({'A' if k % 2 == 0 else 'B'}) took {finished - started:.2f} s, "
                f"RSS {responder.rss_kib() / 1024:.1f} MiB")

    rss = []
    started = time.time()
    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(args.clients)]
    threads.append(threading.Thread(target=importer, daemon=True))
    for t in threads:
        t.start()
    parts = []  # (seconds, memory_kib()): RssAnon and RssFile apart
    while time.time() - started < args.seconds and responder.alive():
        parts.append((time.time() - started, responder.memory_kib()))
        rss.append((parts[-1][0], parts[-1][1]["VmRSS"]))
        time.sleep(5)
    stop.set()
    for t in threads:
        t.join(60)
    alive = responder.alive()
    parts.append((time.time() - started, responder.memory_kib() if alive else {}))
    rss.append((parts[-1][0], parts[-1][1].get("VmRSS", 0)))
    responder.stop()

    # Every answer must match a CRL that was current at some moment between sending and receiving.
    def allowed(sent, received):
        names = set()
        current = "A"
        for begin, end, name in timeline[1:]:
            if end < sent:
                current = name
            elif begin <= received:
                names.add(name)  # an import overlapped the request: the old or the new may answer
        names.add(current)
        return names

    counts = {"good": 0, "revoked": 0, "tryLater": 0, "errors": 0, "contradictions": 0}
    examples = []
    for sent, received, serial, outcome in records:
        if outcome in (GOOD, REVOKED):
            counts[outcome] += 1
            if outcome not in {truth(name, serial) for name in allowed(sent, received)}:
                counts["contradictions"] += 1
                examples.append(f"{serial:#x} answered {outcome} at {sent - started:.3f}s")
        elif outcome == "tryLater":
            counts["tryLater"] += 1
        else:
            counts["errors"] += 1
            examples.append(outcome)
    # A sample of the responses' signatures, verified by the openssl CLI against the responder certificate.
    verified = 0
    for serial, body in sampled[:50]:
        path = os.path.join(args.work, "sample.der")
        open(path, "wb").write(body)
        result = subprocess.run(["openssl", "ocsp", "-respin", path, "-VAfile", os.path.join(pki.dir, "responder.pem"),
                                 "-issuer", os.path.join(pki.dir, "ca.pem"), "-serial", hex(serial)],
                                capture_output=True, text=True)
        if "Response verify OK" in result.stderr + result.stdout:
            verified += 1
        else:
            counts["errors"] += 1
            examples.append(f"signature of a sampled response for {serial:#x} does not verify")
    warm_at = min(60, args.seconds / 10)
    warm = next((kib for t, kib in rss if t >= warm_at), rss[0][1])
    warm_parts = next((m for t, m in parts if t >= warm_at), parts[0][1])
    final = rss[-1][1]
    growth = 100.0 * (final - warm) / warm if warm else 0.0
    # Judged on the heap: RssAnon must grow less than 5% after the warm-up. RssFile is the kernel's pages of
    # mapped files, mostly the store (LMDB maps all of data.mdb, and an import writes the new CRL beside the
    # old one, so the file grows over the first imports and then reuses its pages): it must stay within the
    # binary's own file pages at the first sample plus the store file's size.
    anon_warm, anon_end = warm_parts.get("RssAnon", 0), parts[-1][1].get("RssAnon", 0)
    anon_growth = 100.0 * (anon_end - anon_warm) / anon_warm if anon_warm else 0.0
    store_kib = os.path.getsize(os.path.join(responder.store, "data.mdb")) // 1024
    file_bound = parts[0][1].get("RssFile", 0) + store_kib + 1024
    file_end = parts[-1][1].get("RssFile", 0)
    total = len(records)
    elapsed = time.time() - started
    lat = sorted(r - s for s, r, _, o in records if o in (GOOD, REVOKED)) or [0.0]
    print()
    print("| soak | figure |")
    print("|---|---|")
    print(f"| duration | {elapsed:.0f} s, {args.clients} clients, {len(timeline) - 1} imports of {len(set_a)}-entry CRLs "
          f"(every {args.import_every} s) |")
    print(f"| requests | {total} ({total / max(1, elapsed):.0f}/s); good {counts['good']}, revoked "
          f"{counts['revoked']}, tryLater {counts['tryLater']} |")
    print(f"| latency p50 / p99 | {1000 * lat[len(lat) // 2]:.2f} / {1000 * lat[int(len(lat) * 0.99)]:.2f} ms |")
    print(f"| errors (beyond tryLater) | {counts['errors']} |")
    print(f"| answers contradicting the store | {counts['contradictions']} |")
    print(f"| signatures verified (sample) | {verified} of {min(50, len(sampled))} |")
    print(f"| RSS after warm-up → end | {warm / 1024:.1f} → {final / 1024:.1f} MiB ({growth:+.2f}%; not judged: "
          f"the two lines below are) |")
    print(f"| RSS samples (every 5 s) | min {min(k for _, k in rss) / 1024:.1f}, max {max(k for _, k in rss) / 1024:.1f} MiB |")
    for kind, what in (("RssAnon", "heap and stacks"), ("RssFile", "mapped files: the store's pages")):
        print(f"| {kind} after warm-up → end ({what}) | {warm_parts.get(kind, 0) / 1024:.1f} → "
              f"{parts[-1][1].get(kind, 0) / 1024:.1f} MiB; samples min {min(m.get(kind, 0) for _, m in parts) / 1024:.1f}, "
              f"max {max(m.get(kind, 0) for _, m in parts) / 1024:.1f} MiB |")
    print(f"| heap growth after warm-up (RssAnon, must be < 5%) | {anon_growth:+.2f}% |")
    print(f"| file pages at the end (RssFile, must be ≤ the first sample + data.mdb + 1 MiB) | "
          f"{file_end / 1024:.1f} ≤ {file_bound / 1024:.1f} MiB (data.mdb {store_kib / 1024:.1f} MiB) |")
    for example in examples[:10]:
        log(f"  {example}")
    ok = (alive and counts["errors"] == 0 and counts["contradictions"] == 0 and anon_growth < 5.0
          and file_end <= file_bound)
    print(f"\nsoak: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["abuse", "soak"])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--signer-threads", type=int, default=2)
    parser.add_argument("--attacks", default="")
    parser.add_argument("--http-timeout", type=int, default=10, help="the responder's http_timeout_seconds")
    parser.add_argument("--fd-limit", type=int, default=1024, help="abuse: the responder's open-file limit")
    parser.add_argument("--attacker-addresses", type=int, default=1,
                        help="abuse: attackers connect from this many addresses, 127.0.0.2 on (the legitimate "
                             "client from 127.0.0.1); fd-exhaustion uses as many as it needs past the "
                             "per-address cap")
    parser.add_argument("--unknown-serials", type=int, default=1_000_000)
    parser.add_argument("--paced-scheduling", choices=["normal", "short-slice", "realtime"], default="realtime",
                        help="abuse: the paced client's scheduling (ocsp-load --scheduling)")
    parser.add_argument("--attacker-priority", choices=["idle", "normal"], default="idle",
                        help="abuse: the attackers' CPU scheduling (idle: SCHED_IDLE, they use the CPU the "
                             "responder and the legitimate client leave; normal: they compete with both)")
    parser.add_argument("--import-every", type=int, default=60)
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0, help="soak: requests/s per client (0: as fast as answered)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    args.work = os.path.abspath(args.work)
    if args.seconds is None:
        args.seconds = 10 if args.mode == "abuse" else 600
    try:
        return abuse(args) if args.mode == "abuse" else soak(args)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        log(f"set-up failed: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
