"""Checks that `kosmos pull` and Python's huggingface_hub share one cache.

A small Hub stand-in (model info, the recursive tree listing huggingface_hub 2.x asks for,
resolve/ with the Hub's headers, a storage host with Range) serves a folder as `test-org/model`.
Then:
  1. huggingface_hub.snapshot_download fills cache A;
  2. `kosmos pull` into cache A must download nothing (every file found in the cache);
  3. `kosmos pull` into an empty cache B;
  4. A and B must hold the same tree: the same blobs (names and bytes), the same snapshot links
     (relative targets), the same refs;
  5. huggingface_hub with HF_HUB_OFFLINE=1 must find every file in cache B.

Usage: python hub_compat.py KOSMOS_EXECUTABLE MODEL_FOLDER
(run with /work/hubvenv: pip install -r requirements-hub.txt)
"""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

COMMIT = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
REPO = "test-org/model"
LFS_SUFFIXES = (".safetensors", ".bin", ".model")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_handler(files):
    class Hub(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, headers, body=b""):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = self.path.split("?")[0]
            host = self.headers["Host"]
            if path in (f"/api/models/{REPO}/revision/main", f"/api/models/{REPO}"):
                body = json.dumps({"id": REPO, "modelId": REPO, "sha": COMMIT, "private": False,
                                   "siblings": [{"rfilename": n} for n in sorted(files)]}).encode()
                return self.reply(200, {"Content-Type": "application/json"}, body)
            if path == f"/api/models/{REPO}/tree/{COMMIT}":
                entries = []
                for name in sorted(files):
                    data = files[name]
                    entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                    if name.endswith(LFS_SUFFIXES):
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    entries.append(entry)
                return self.reply(200, {"Content-Type": "application/json"}, json.dumps(entries).encode())
            for revision in ("main", COMMIT):
                prefix = f"/{REPO}/resolve/{revision}/"
                if path.startswith(prefix):
                    name = path[len(prefix):]
                    if name not in files:
                        return self.reply(404, {"X-Error-Code": "EntryNotFound"})
                    data = files[name]
                    if name.endswith(LFS_SUFFIXES):
                        sha = hashlib.sha256(data).hexdigest()
                        return self.reply(302, {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                                "ETag": f'"{git_blob_sha1(data)}"',
                                                "Location": f"http://localhost:{host.split(':')[1]}/cdn/{sha}", "Content-Length": "0"})
                    return self.reply(200, {"X-Repo-Commit": COMMIT, "ETag": f'"{git_blob_sha1(data)}"'}, data)
            if path.startswith("/cdn/"):
                sha = path[5:]
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == sha:
                        start = 0
                        rng = self.headers.get("Range")
                        if rng and rng.startswith("bytes=") and rng.endswith("-"):
                            start = int(rng[6:-1])
                            return self.reply(206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, data[start:])
                        return self.reply(200, {}, data)
            return self.reply(404, {"X-Error-Code": "RepoNotFound"})

    return Hub


def tree(cache):
    out = {}
    for root, dirs, names in os.walk(cache):
        for name in dirs + names:
            p = Path(root) / name
            rel = str(p.relative_to(cache))
            # huggingface_hub's own extras: its lock files, the CACHEDIR.TAG marker and (2.x) a cache
            # of tree listings; none is needed to find a file.
            if rel.startswith(".locks") or name == "CACHEDIR.TAG" or rel.split(os.sep)[1:2] == ["trees"]:
                continue
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def main():
    kosmos, folder = sys.argv[1], Path(sys.argv[2])
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(files))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    work = Path(tempfile.mkdtemp())
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME"):
        env.pop(name, None)

    cache_a, cache_b = work / "a", work / "b"
    code = ("import huggingface_hub, sys; print(huggingface_hub.snapshot_download(sys.argv[1], cache_dir=sys.argv[2]))")
    path_a = subprocess.run([sys.executable, "-c", code, REPO, str(cache_a)], env=env, check=True, capture_output=True, text=True).stdout.strip()
    print("huggingface_hub", __import__("huggingface_hub").__version__, "->", path_a)

    again = subprocess.run([kosmos, "pull", REPO], env=dict(env, HF_HUB_CACHE=str(cache_a)), check=True, capture_output=True, text=True)
    assert again.stdout.strip() == path_a, (again.stdout, path_a)
    assert "downloaded " not in again.stderr and f"{len(files)} files ready (0 downloaded" in again.stderr, again.stderr
    print("kosmos pull into huggingface_hub's cache: 0 of", len(files), "files downloaded")

    ours = subprocess.run([kosmos, "pull", REPO], env=dict(env, HF_HUB_CACHE=str(cache_b)), check=True, capture_output=True, text=True)
    path_b = ours.stdout.strip()
    ta, tb = tree(cache_a), tree(cache_b)
    if ta != tb:
        for k in sorted(set(ta) | set(tb)):
            if ta.get(k) != tb.get(k):
                print("differs:", k, ta.get(k), tb.get(k))
        sys.exit(1)
    print("caches equal:", len(ta), "entries (blobs, links, refs)")

    offline = ("import huggingface_hub, sys; print(huggingface_hub.snapshot_download(sys.argv[1], cache_dir=sys.argv[2]))")
    found = subprocess.run([sys.executable, "-c", offline, REPO, str(cache_b)], env=dict(env, HF_HUB_OFFLINE="1"),
                           check=True, capture_output=True, text=True).stdout.strip()
    assert found == path_b, (found, path_b)
    for name, data in files.items():
        assert (Path(found) / name).read_bytes() == data, name
    print("huggingface_hub offline reads kosmos's cache:", found)
    server.shutdown()


if __name__ == "__main__":
    main()
