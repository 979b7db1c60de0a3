"""Six real WebDAV servers serving one folder tree on loopback, for recording and timing.

Apache (mod_dav), lighttpd (mod_webdav), nginx (dav + dav-ext), ``rclone serve webdav``,
Go's x/net/webdav (a small program built from Debian's ``golang-golang-x-net-dev``) and
wsgidav (cheroot). Each serves ``tree`` at its root, read-only where it can be, on a free
loopback port; ``serve`` starts one and stops it (its whole process group) when the block
ends. A server whose program is missing raises ``Missing`` with what to install.

The tree is what the listings benchmark and the recorded fixtures need (``make_tree``):
``/.ids/0/1/2/3/`` with its 16 one-character sub-folders, and ``/.ids/0/1/2/3/4/`` with
files named by UUIDs.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from shardproxy.tools.ports import free_port

SERVERS = ("apache", "lighttpd", "nginx", "rclone", "go", "wsgidav")
HEX = "0123456789abcdef"
FOLDERS = "/.ids/0/1/2/3/"
"""A folder of 16 sub-folders."""
FILES = "/.ids/0/1/2/3/4/"
"""A folder of files."""
_DAV_EXT = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")
_APACHE_MODULES = Path("/usr/lib/apache2/modules")
_GO_NET = Path("/usr/share/gocode/src/golang.org/x/net/webdav")
_GO_SERVER = """package main

import (
	"net/http"
	"os"

	"golang.org/x/net/webdav"
)

func main() {
	handler := &webdav.Handler{
		FileSystem: webdav.Dir(os.Args[2]),
		LockSystem: webdav.NewMemLS(),
	}
	panic(http.ListenAndServe(os.Args[1], handler))
}
"""


class Missing(RuntimeError):
    """A server's program is not installed."""


def file_uuid(n: int) -> str:
    """The name of file ``n`` of the files folder: a UUID starting with its five levels."""
    return str(uuid.UUID(int=(0x01234 << 108) | (0x4000 << 64) | (0x8 << 60) | n))


def make_tree(root: Path, files: int) -> None:
    """The folder tree every server serves (see the module docstring)."""
    folders = root / FOLDERS.strip("/")
    for char in HEX:
        (folders / char).mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (root / FILES.strip("/") / file_uuid(n)).write_bytes(b"x" * (1000 + n))


def _which(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise Missing(f"{program} is not installed (Debian: apt-get install {package})")
    return path


def _apache(tree: Path, scratch: Path, port: int) -> list[str]:
    binary = _which("apache2", "apache2")
    modules = ("mpm_event", "authz_core", "dav", "dav_fs")
    lines = [f"LoadModule {m}_module {_APACHE_MODULES}/mod_{m}.so" for m in modules]
    conf = scratch / "apache.conf"
    conf.write_text(
        "\n".join(
            [
                *lines,
                f"ServerRoot {scratch}",
                f"Listen 127.0.0.1:{port}",
                "ServerName 127.0.0.1",
                # Run as root, Apache's workers take this user: ``tree`` must be readable by it.
                *(["User www-data", "Group www-data"] if os.geteuid() == 0 else []),
                f"PidFile {scratch}/apache.pid",
                f"ErrorLog {scratch}/apache-error.log",
                f"DavLockDB {scratch}/davlock",
                f"DocumentRoot {tree}",
                f"<Directory {tree}>",
                "  Dav On",
                "  Require all granted",
                "</Directory>",
                "",
            ]
        )
    )
    return [binary, "-f", str(conf), "-DFOREGROUND"]


def _lighttpd(tree: Path, scratch: Path, port: int) -> list[str]:
    binary = _which("lighttpd", "lighttpd lighttpd-mod-webdav")
    if not Path("/usr/lib/lighttpd/mod_webdav.so").exists():
        raise Missing(
            "lighttpd's mod_webdav is not installed (apt-get install lighttpd-mod-webdav)"
        )
    conf = scratch / "lighttpd.conf"
    conf.write_text(
        'server.modules = ("mod_webdav")\n'
        f'server.document-root = "{tree}"\n'
        'server.bind = "127.0.0.1"\n'
        f"server.port = {port}\n"
        f'server.errorlog = "{scratch}/lighttpd-error.log"\n'
        'webdav.activate = "enable"\n'
        'webdav.is-readonly = "enable"\n'
    )
    return [binary, "-D", "-f", str(conf)]


def _nginx(tree: Path, scratch: Path, port: int) -> list[str]:
    binary = _which("nginx", "nginx-light libnginx-mod-http-dav-ext")
    if not _DAV_EXT.exists():
        raise Missing(
            "nginx's dav-ext module is missing (apt-get install libnginx-mod-http-dav-ext)"
        )
    temp = scratch / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf = scratch / "nginx.conf"
    conf.write_text(
        f"load_module {_DAV_EXT};\ndaemon off;\nuser {getpass.getuser()};\n"
        f"pid {scratch}/nginx.pid;\nerror_log {scratch}/nginx-error.log;\n"
        "events {}\nhttp {\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  server {{\n    listen 127.0.0.1:{port};\n    root {tree};\n"
        "    dav_ext_methods PROPFIND OPTIONS;\n  }\n}\n"
    )
    return [binary, "-p", str(scratch), "-c", str(conf)]


def _rclone(tree: Path, scratch: Path, port: int) -> list[str]:
    binary = _which("rclone", "rclone")
    return [
        binary,
        "serve",
        "webdav",
        str(tree),
        "--addr",
        f"127.0.0.1:{port}",
        "--read-only",
        "--config",
        os.devnull,
        "--cache-dir",
        str(scratch / "rclone-cache"),
    ]


def _go(tree: Path, scratch: Path, port: int) -> list[str]:
    go = _which("go", "golang-go")
    if not _GO_NET.exists():
        raise Missing(
            "Go's x/net/webdav is not installed (apt-get install golang-golang-x-net-dev)"
        )
    source = scratch / "gowebdav" / "main.go"
    source.parent.mkdir(exist_ok=True)
    source.write_text(_GO_SERVER)
    binary = scratch / "gowebdav" / "gowebdav"
    environment = {
        **os.environ,
        "GOPATH": "/usr/share/gocode",
        "GO111MODULE": "off",
        "GOCACHE": str(scratch / "gocache"),
        "GOFLAGS": "",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(source)],
        env=environment,
        capture_output=True,
        check=False,
        timeout=300,
    )
    if built.returncode != 0:
        raise Missing(f"building the Go server failed: {built.stderr.decode()[-500:]}")
    return [str(binary), f"127.0.0.1:{port}", str(tree)]


def _wsgidav(tree: Path, scratch: Path, port: int) -> list[str]:
    binary = shutil.which("wsgidav") or str(Path(sys.executable).with_name("wsgidav"))
    if not Path(binary).exists():
        raise Missing("wsgidav is not installed (pip install wsgidav cheroot)")
    return [
        binary,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--root",
        str(tree),
        "--auth",
        "anonymous",
        "--no-config",
        "-q",
    ]


_ARGV = {
    "apache": _apache,
    "lighttpd": _lighttpd,
    "nginx": _nginx,
    "rclone": _rclone,
    "go": _go,
    "wsgidav": _wsgidav,
}


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def serve(name: str, tree: Path, scratch: Path) -> Iterator[str]:
    """Run server ``name`` on ``tree`` until the block ends; yields its base URL."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = _ARGV[name](tree, scratch, port)
    log = scratch / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                logs = "".join(path.read_text()[-800:] for path in sorted(scratch.glob("*.log")))
                raise RuntimeError(f"{name} did not start: {logs}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
