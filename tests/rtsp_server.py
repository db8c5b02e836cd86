"""A live H.264 test camera served over RTSP on loopback, for the live-source tests.

Run by the system Python (GStreamer's bindings), never imported by the project::

    /usr/bin/python3 tests/rtsp_server.py PORT [--path /cam] [--user NAME:PASSWORD]

It serves a moving test pattern (160x120, 15 frames/s, a key frame every second) at
``rtsp://127.0.0.1:PORT/cam``, prints ``READY`` on stdout once it listens and ``PLAYING``
each time a client starts playing, and serves until it is terminated. With ``--user``
clients must authenticate (basic auth).
Needs python3-gi, gir1.2-gst-rtsp-server-1.0 and GStreamer's base, good and ugly plugins.
"""

from __future__ import annotations

import argparse
import base64
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
    "! rtph264pay name=pay0 pt=96 )"
)


def on_client_connected(server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient):
    client.connect("play-request", lambda client, context: print("PLAYING", flush=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--user", help="NAME:PASSWORD: require basic authentication")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    if args.user:
        name = args.user.partition(":")[0]
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, name)
        auth.add_basic(base64.b64encode(args.user.encode()).decode(), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        for permission in (
            GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
            GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
        ):
            permissions.add_permission_for_role(name, permission, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    server.connect("client-connected", on_client_connected)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
