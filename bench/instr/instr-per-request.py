#!/usr/bin/env python3
"""Instructions per request that apikey adds, counted by valgrind (callgrind), not timed.

CPU time on a shared 2-core machine swings by several microseconds between runs; instruction
counts repeat to about 0.5 %. This starts the release `load-server` (the demo plus byte-identical
no-auth answers) under callgrind on the memory store, sends N keep-alive requests per case from one
client, zeroes the counters before each case and reads them after, and prints instructions per
request and the difference from its identical baseline:

  valid      /my_service + the demo key              vs /bench/noauth      (same JSON answer)
  malformed  /my_service + our prefix, bad checksum  vs /bench/noauth_401  (same 401 bytes)
  unknown    /my_service + one free-form unknown key vs /bench/noauth_401
  spray      /my_service + a new free-form key each  vs /bench/noauth_401
  forged     /my_service + a new key each in the generated format, its checksum right (what an
             attacker who computes the public CRC sends: always hashed)  vs /bench/noauth_401

On Rocket the refusals are also priced over Rocket's own cheapest refusal, `/bench/guard_401`
(a guard that always fails with 401 and a catcher sending the same bytes): what apikey's guard
work adds to a refusal Rocket would make anyway.

Note: valgrind hides the CPU's SHA and CRC instructions, so SHA-256 (~3.5k) and CRC-32 (~1.1k)
run in software here; natively they are far cheaper. The differences are still exact and
comparable run to run.

FRAMEWORK=axum runs `axum-load-server` (the axum demo, its baselines outside the apikey layer)
instead of the Rocket `load-server`; the cases and baselines are the same, and each case is also
sent to the hand-rolled peer `/bench/peer` (tower-http's `ValidateRequestHeaderLayer`, SHA-256 of
the header, a `HashMap` of digests; the same answers byte for byte) in the same run: `peer_valid`,
`peer_malformed`, `peer_unknown`, `peer_spray`, `peer_forged`, over the same baselines, and each apikey case is
reported as a ratio to its peer case (goal: at most 1.0).

EXTRA=1 adds three config-section keys of one length, all valid, to price features one at a time:
  open       a section key                                 vs /bench/noauth
  bound      the same, bound to 127.0.0.0/8 (allowlist)    vs /bench/noauth  (bound - open: the check)
  limited    the same, with a rate limit and quota          vs /bench/noauth  (limited - open: the
             limits and their RateLimit fields; run again with APIKEY_RATELIMIT_HEADERS=false)

Usage (from the repository root):  python3 bench/instr/instr-per-request.py
Env: FRAMEWORK (rocket | axum), N (1000 requests per case), ROUNDS (2), BIN (the load server of
the framework in target/release; built if absent or BUILD=1), and bars BAR_VALID,
BAR_MALFORMED, BAR_UNKNOWN, BAR_SPRAY (instructions; exit 1 if over), and KEEP (a folder: each
case's callgrind dump is kept there as <case>.out, for `callgrind_annotate --inclusive=yes`).
"""
import base64, glob, http.client, os, re, shutil, socket, subprocess, sys, tempfile, time, zlib

N = int(os.environ.get("N", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
FRAMEWORK = os.environ.get("FRAMEWORK", "rocket")
SERVER = {"rocket": "load-server", "axum": "axum-load-server"}[FRAMEWORK]
BIN = os.environ.get("BIN", f"target/release/{SERVER}")
KEEP = os.environ.get("KEEP")
BARS = {k: int(os.environ[v]) for k, v in (("valid", "BAR_VALID"), ("malformed", "BAR_MALFORMED"),
                                          ("unknown", "BAR_UNKNOWN"), ("spray", "BAR_SPRAY")) if v in os.environ}


B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n, width):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")[-width:]


def forge(prefix, secret):
    """A key in the generated format with a right checksum (CRC-32 of the body, base62)."""
    body = f"{prefix}_{secret}"
    return body + base62(zlib.crc32(body.encode()), 6)


def main():
    if os.environ.get("BUILD") == "1" or not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apikey-bench", "--bin", SERVER], check=True)
    work = tempfile.mkdtemp(prefix="instr-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    extra = os.environ.get("EXTRA") == "1"
    sections = {}
    if extra:
        for name in ("open", "bound", "limited"):
            sections[f"APIKEY_API_KEY_{name.upper()}__KEY"] = f"section-key-{name:>7}-0123456789".replace(" ", "x")
            sections[f"APIKEY_API_KEY_{name.upper()}__USER"] = "bench"
        sections["APIKEY_API_KEY_BOUND__ALLOW_IP"] = "127.0.0.0/8"
        sections["APIKEY_API_KEY_LIMITED__RATE_LIMIT"] = "4000000000/1s"
        sections["APIKEY_API_KEY_LIMITED__QUOTA"] = "1000000000000/1d"
    env = dict(os.environ, **sections, APIKEY_DATABASE_URL="memory:", ROCKET_PORT=str(port), PORT=str(port), ROCKET_LOG_LEVEL="off",
               ROCKET_SECRET_KEY=base64.b64encode(os.urandom(32)).decode(),
               APIKEY_ADMIN_COOKIE_KEY=base64.b64encode(os.urandom(32)).decode())
    log = open(os.path.join(work, "svc.log"), "w+")
    out = os.path.join(work, "cg.out")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", os.path.abspath(BIN)],
                         cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close(); break
            except OSError:
                time.sleep(0.2)
        time.sleep(1); log.seek(0)
        m = re.search(r"\b[a-z]+_[A-Za-z0-9]{30,}\b", log.read())
        if not m:
            print("no demo key printed"); sys.exit(2)
        key = m.group(0)
        bad = key.split("_")[0] + "_" + "Z" * (len(key) - 3)
        prefix = key.split("_")[0]
        if forge(prefix, key[len(prefix) + 1:-6]) != key:
            print("the forged keys' checksum does not match the demo key's"); sys.exit(2)
        forged = lambda i: {"API-KEY": forge(prefix, base62(time.time_ns() * 1000 + i, 44))}
        cases = [("noauth", "/bench/noauth", lambda i: {}), ("valid", "/my_service", lambda i: {"API-KEY": key}),
                 ("noauth_401", "/bench/noauth_401", lambda i: {}),
                 *([("guard_401", "/bench/guard_401", lambda i: {})] if FRAMEWORK == "rocket" else []),
                 ("malformed", "/my_service", lambda i: {"API-KEY": bad}),
                 ("unknown", "/my_service", lambda i: {"API-KEY": "junk-free-form-key-123456"}),
                 ("spray", "/my_service", lambda i: {"API-KEY": f"spray-{time.time_ns()}-{i}"}),
                 ("forged", "/my_service", forged)]
        if FRAMEWORK == "axum":
            cases += [("peer_valid", "/bench/peer", lambda i: {"API-KEY": key}),
                      ("peer_malformed", "/bench/peer", lambda i: {"API-KEY": bad}),
                      ("peer_unknown", "/bench/peer", lambda i: {"API-KEY": "junk-free-form-key-123456"}),
                      ("peer_spray", "/bench/peer", lambda i: {"API-KEY": f"spray-{time.time_ns()}-{i}"}),
                      ("peer_forged", "/bench/peer", forged)]
        for name in ("open", "bound", "limited") if extra else ():
            k = sections[f"APIKEY_API_KEY_{name.upper()}__KEY"]
            cases.append((name, "/my_service", lambda i, k=k: {"API-KEY": k}))

        def send(path, hdr, n):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for i in range(n):
                c.request("GET", path, headers=hdr(i)); r = c.getresponse(); body = r.read()
            c.close()
            return r.status, body

        def ctl(*a):
            subprocess.run(["callgrind_control", *a, str(p.pid)], capture_output=True)

        def total():
            before = set(glob.glob(out + "*"))
            ctl("-d")
            for _ in range(100):
                new = set(glob.glob(out + "*")) - before
                if new:
                    break
                time.sleep(0.05)
            f = max(glob.glob(out + "*"), key=os.path.getmtime)
            time.sleep(0.2)
            if KEEP:
                os.makedirs(KEEP, exist_ok=True)
                shutil.copy(f, os.path.join(KEEP, f"{current[0]}.out"))
            for line in open(f):
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
            return 0

        # Every case answers what its baseline answers, byte for byte: a count is only worth
        # comparing when the answers are the same (a valid key refused would look cheap).
        answers = {name: send(path, hdr, 50) for name, path, hdr in cases}
        same_as = {"valid": "noauth", "peer_valid": "noauth", "malformed": "noauth_401",
                   "unknown": "noauth_401", "spray": "noauth_401", "forged": "noauth_401",
                   "peer_malformed": "noauth_401", "peer_unknown": "noauth_401",
                   "peer_spray": "noauth_401", "peer_forged": "noauth_401"}
        for name, base in same_as.items():
            if name in answers and answers[name] != answers[base]:
                print(f"{name} answered {answers[name]!r}, not {base}'s {answers[base]!r}")
                sys.exit(2)
        # The section keys answer their own user and key name (a few bytes apart from the
        # demo's): they are priced against each other, and must at least be let in.
        for name in ("open", "bound", "limited"):
            if name in answers and answers[name][0] != 200:
                print(f"{name} answered {answers[name]!r}")
                sys.exit(2)
        if answers["noauth"][0] != 200 or answers["noauth_401"][0] != 401:
            print(f"the baselines answered {answers['noauth'][0]} and {answers['noauth_401'][0]}")
            sys.exit(2)
        per = {c[0]: [] for c in cases}
        current = [""]
        for _ in range(ROUNDS):
            for name, path, hdr in cases:
                current[0] = name
                ctl("-z"); send(path, hdr, N); per[name].append(total() / N)
        base_of = {"valid": "noauth", "malformed": "noauth_401", "unknown": "noauth_401", "spray": "noauth_401",
                   "forged": "noauth_401", "peer_forged": "noauth_401",
                   "open": "noauth", "bound": "noauth", "limited": "noauth",
                   "peer_valid": "noauth", "peer_malformed": "noauth_401", "peer_unknown": "noauth_401",
                   "peer_spray": "noauth_401"}
        added = {}
        ok = True
        for name, *_ in cases:
            v = min(per[name])
            line = f"{name:11s} {v:9.0f} instructions/request"
            if name in base_of:
                d = v - min(per[base_of[name]])
                added[name] = d
                who = "the peer adds" if name.startswith("peer_") else "apikey adds"
                line += f"   {who} {d:+7.0f} ({100 * d / min(per[base_of[name]]):+5.1f} %)"
                if "guard_401" in per and base_of[name] == "noauth_401":
                    g = v - min(per["guard_401"])
                    line += f"   over Rocket's own refusal {g:+7.0f}"
                if name in BARS:
                    line += f"  bar {BARS[name]}"
                    ok &= d <= BARS[name]
            print(line, flush=True)
        for name in ("valid", "malformed", "unknown", "spray", "forged"):
            peer = added.get("peer_" + name)
            if peer and name in added:
                print(f"{name:11s} apikey / hand-rolled peer: {added[name] / peer:.2f}x "
                      f"({added[name]:+.0f} vs {peer:+.0f})", flush=True)
        print("instr-per-request: " + ("ok" if ok else "over a bar"))
        sys.exit(0 if ok else 1)
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    main()
