"""``rodentseg app``: the Gradio app for clicking, propagating, reviewing and saving masks.

Examples::

    rodentseg app                                   # http://127.0.0.1:7860, data root = .
    rodentseg app --data-root ../shared/data --port 7861
    rodentseg app --model path/to/sam2-video-dir    # SAM-family clicks and propagation

The app listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, opens files
by path only inside ``--data-root`` and keeps each browser session's work apart.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from rodentseg.errors import RodentsegError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``app`` subcommand (handler :func:`run_app` as ``args.func``)."""
    p = subparsers.add_parser(
        "app", help="the Gradio app: click animals, propagate, review, save",
        description=__doc__.split("Examples")[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="rodentseg-tiny",
                   help="rodentseg-tiny (default), a segmenter directory, or a SAM-family video "
                        "model (short name, hub id, save_pretrained directory)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
                        "0.0.0.0 makes the app reachable from the network)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--data-root", type=Path, default=Path("."),
                   help="the only folder videos can be opened from by path (default: current "
                        "directory)")
    p.add_argument("--out", type=Path, default=None,
                   help="also copy saved results here (default: downloads only)")
    p.add_argument("--max-upload-mb", type=float, default=500,
                   help="largest upload in MB (default 500)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=run_app)
    return p


def run_app(args) -> int:
    """Load the model, build the app and serve it until interrupted; returns the exit code.

    Raises:
        RodentsegError: gradio is not installed, a bad ``--data-root`` / ``--max-upload-mb``,
            the port is in use, or a model that cannot be loaded.
    """
    import os

    from rodentseg.app.paths import resolve_root

    if not (args.max_upload_mb > 0 and math.isfinite(args.max_upload_mb)):
        raise RodentsegError(f"--max-upload-mb must be a finite number > 0, got "
                             f"{args.max_upload_mb}")
    root = resolve_root(args.data_root)
    check_port(args.host, args.port)  # before the model loads: fail in a second, not a minute
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise RodentsegError("the app needs gradio: pip install -c constraints.txt "
                             "'rodentseg[app]'") from None
    from rodentseg.app.state import load_app_model
    from rodentseg.app.ui import build_app, launch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    model = load_app_model(args.model, args.device)
    demo = build_app(model, root, args.out)
    if args.host != DEFAULT_HOST:
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use "
              "the app", file=sys.stderr)
    print(f"rodentseg app: http://{args.host}:{args.port} (data root {root}, model "
          f"{args.model}); Ctrl-C to stop", flush=True)
    try:
        launch(demo, args.host, args.port, args.max_upload_mb)
    except OSError as e:  # taken between check_port and now
        raise RodentsegError(f"cannot serve the app on {args.host}:{args.port} ({e}); choose "
                             "another --port") from None
    return 0


def check_port(host: str, port: int) -> None:
    """Check that the app can listen on ``host:port`` (binds and closes a socket, with
    ``SO_REUSEADDR`` as the server sets it).

    Raises:
        RodentsegError: the port is in use or not allowed, or the host is not an address of
            this machine; the message names them and the fix.
    """
    import socket

    try:
        socket.create_server((host, port)).close()
    except OSError as e:
        raise RodentsegError(
            f"cannot listen on {host}:{port}: {e.strerror or e}; expected a free port (another "
            "program, or another rodentseg app, uses it): choose another with --port") from None
