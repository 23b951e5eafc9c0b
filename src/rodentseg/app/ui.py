"""The Gradio interface: a thin layer over :class:`rodentseg.app.state.AppSession`.

Every handler takes the user's session from a ``gr.State`` (one :class:`AppSession` per browser
session, created on first use, deleted with the session), calls one method, and returns the
updated view. A :class:`RodentsegError` becomes a visible ``gr.Error`` message. Key components
have ``elem_id`` s for browser tests: ``open-path``, ``open-btn``, ``upload``, ``status``,
``frame``, ``frame-slider``, ``click-mode``, ``obj-id``, ``obj-colour``, ``new-animal``,
``undo``, ``n-propagate``, ``propagate-btn``, ``latency``, ``mask-info`` (JSON of
:meth:`AppSession.mask_info`), ``next-review``, ``review``, ``save-btn``, ``saved-path``,
``download-masks``, ``download-overlay``, ``n-animals``, ``segment-btn``, ``tracks-image``,
``summary``, ``tracks``, ``segment-files``.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from pathlib import Path

import gradio as gr

from rodentseg.app.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES, resolve_root
from rodentseg.app.render import draw_tracks
from rodentseg.app.state import CLICK_MODES, AppModel, AppSession, log
from rodentseg.errors import RodentsegError
from rodentseg.overlay import colour_of

#: Fonts of the system only: the page loads nothing from the internet.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])
REVIEW_HEADERS = ["rank", "frame_idx", "uncertainty", "reason", "obj_id"]
MAX_TABLE_ROWS = 500


def _errors(fn):
    """Turn a RodentsegError into a visible Gradio error."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RodentsegError as e:
            raise gr.Error(str(e)) from None
    return wrapper


def _swatch(oid: int) -> str:
    r, g, b = (int(c) for c in colour_of(oid))
    return (f'<span style="display:inline-block;width:1em;height:1em;vertical-align:middle;'
            f'background:rgb({r},{g},{b})"></span> animal {oid}')


def _table(path: Path, limit: int = MAX_TABLE_ROWS) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[:limit + 1]


def build_app(model: AppModel, data_root: str | Path, out: str | Path | None = None,
              default_propagate: int = 30) -> gr.Blocks:
    """The app's ``gr.Blocks`` (not launched).

    Args:
        model: the served model, shared by all sessions.
        data_root: the only folder files can be opened from by path.
        out: folder saved results are copied to, or None (downloads only).
        default_propagate: the initial "frames to propagate".

    Raises:
        RodentsegError: ``data_root`` is not a directory.
    """
    root = resolve_root(data_root)

    def session(s: AppSession | None) -> AppSession:
        return s if s is not None else AppSession(model, root, out)

    def view(s: AppSession, status: str, image=None):
        info = s.mask_info()
        n = s.source.n_frames if s.source is not None else 1
        notes, s.notes = s.notes, []
        return (s, s.render() if image is None else image,
                gr.update(maximum=max(n - 1, 1), value=s.frame_idx),
                gr.update(choices=[str(o) for o in s.obj_ids], value=str(s.obj_id)),
                _swatch(s.obj_id), json.dumps(info),
                "" if s.last_latency_ms is None else f"{s.last_latency_ms:.0f} ms",
                "\n".join([status, *notes]).strip())

    with gr.Blocks(title="rodentseg", analytics_enabled=False) as demo:
        state = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        gr.Markdown("## rodentseg: click animals, propagate, review, save")
        with gr.Row():
            path = gr.Textbox(label=f"path under the data root ({root})", elem_id="open-path",
                              placeholder="tracktor-mice/mouse_video.mp4", scale=4)
            open_btn = gr.Button("Open", elem_id="open-btn", scale=1)
            upload = gr.File(label="or upload a video / image", elem_id="upload", scale=2,
                             file_types=list(VIDEO_SUFFIXES + IMAGE_SUFFIXES))
        status = gr.Textbox(label="status", elem_id="status", interactive=False, lines=2)
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(label="frame (click on an animal)", elem_id="frame",
                                 interactive=False, format="jpeg", buttons=[])
                slider = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame-slider")
            with gr.Column(scale=1):
                mode = gr.Radio(list(CLICK_MODES), value=CLICK_MODES[0], label="click mode",
                                elem_id="click-mode")
                obj = gr.Dropdown(["1"], value="1", label="animal (obj_id)", elem_id="obj-id")
                swatch = gr.HTML(_swatch(1), elem_id="obj-colour")
                new_btn = gr.Button("New animal", elem_id="new-animal")
                undo_btn = gr.Button("Undo last click", elem_id="undo")
                n_prop = gr.Number(default_propagate, precision=0, minimum=1,
                                   label="frames to propagate", elem_id="n-propagate")
                prop_btn = gr.Button("Propagate from this frame", variant="primary",
                                     elem_id="propagate-btn")
                latency = gr.Textbox(label="last click", elem_id="latency", interactive=False)
                info = gr.Textbox(label="frame info", elem_id="mask-info", interactive=False)
        with gr.Accordion("Review queue (frames ranked by uncertainty)", open=True):
            next_btn = gr.Button("Next uncertain frame", elem_id="next-review")
            review = gr.Dataframe(headers=REVIEW_HEADERS, elem_id="review", interactive=False)
        with gr.Accordion("Save", open=True):
            save_btn = gr.Button("Save result + training dataset", elem_id="save-btn")
            saved_path = gr.Textbox(label="saved to", elem_id="saved-path", interactive=False)
            with gr.Row():
                dl_masks = gr.File(label="masks.json", elem_id="download-masks")
                dl_overlay = gr.File(label="overlay.mp4", elem_id="download-overlay")
        with gr.Accordion("Default model on the whole video", open=False):
            animals = gr.Number(None, precision=0, label="animals (empty: any number)",
                                elem_id="n-animals")
            seg_btn = gr.Button("Run rodentseg-tiny on the whole video", elem_id="segment-btn")
            tracks_img = gr.Image(label="tracks", elem_id="tracks-image", interactive=False,
                                  format="jpeg")
            summary = gr.Dataframe(label="summary.csv", elem_id="summary", interactive=False)
            tracks = gr.Dataframe(label=f"tracks.csv (first {MAX_TABLE_ROWS} rows)",
                                  elem_id="tracks", interactive=False)
            seg_files = gr.File(label="result files", file_count="multiple",
                                elem_id="segment-files")

        views = [state, image, slider, obj, swatch, info, latency, status]

        @_errors
        def on_open(s, text):
            s = session(s)
            p = s.open_path(text)
            return view(s, f"opened {p.name}: {s.source.n_frames} frames, "
                           f"{s.source.width}x{s.source.height}")

        @_errors
        def on_upload(s, file):
            if file is None:
                return view(session(s), "")
            s = session(s)
            p = s.open_upload(file)
            return view(s, f"opened upload {p.name}: {s.source.n_frames} frames")

        @_errors
        def on_slide(s, t):
            s = session(s)
            s.goto(int(t))
            return view(s, f"frame {s.frame_idx}")

        @_errors
        def on_click(s, evt: gr.SelectData):
            t0 = time.perf_counter()
            s = session(s)
            x, y = evt.index
            overlay = s.click(x, y)
            out = view(s, f"click at ({x}, {y}) on frame {s.frame_idx}, animal {s.obj_id} "
                          f"({s.mode})", overlay)
            log.info("click handler total %.0f ms", (time.perf_counter() - t0) * 1000)
            return out

        @_errors
        def on_mode(s, m):
            s = session(s)
            s.set_mode(m)
            return view(s, f"click mode: {m}")

        @_errors
        def on_obj(s, o):
            s = session(s)
            if o is not None:
                s.select_object(int(o))
            return view(s, f"clicks go to animal {s.obj_id}")

        @_errors
        def on_new(s):
            s = session(s)
            oid = s.new_object()
            return view(s, f"new animal {oid}: click on it")

        @_errors
        def on_undo(s):
            s = session(s)
            s.undo()
            return view(s, "undone")

        def review_rows(s):
            return [[r[0], r[1], r[3], r[4], r[5]] for r in s.review[:MAX_TABLE_ROWS]]

        @_errors
        def on_propagate(s, n, progress=gr.Progress()):  # noqa: B008 (gradio's idiom)
            s = session(s)
            n = int(n or 0)
            start = s.frame_idx
            t0 = time.perf_counter()
            progress((0, n), desc="propagating")
            done = s.propagate(n, lambda t: progress((t - start, n), desc="propagating"))
            dt = time.perf_counter() - t0
            msg = (f"propagated {done} frames from frame {start} "
                   f"({done / max(dt, 1e-9):.1f} frames/s)")
            return (*view(s, msg), review_rows(s))

        @_errors
        def on_next(s):
            s = session(s)
            t = s.next_review_frame()
            return view(s, f"review: frame {t}")

        @_errors
        def on_review_select(s, evt: gr.SelectData):
            s = session(s)
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            s.goto(int(s.review[int(row)][1]))
            return view(s, f"review: frame {s.frame_idx}")

        @_errors
        def on_save(s, progress=gr.Progress()):  # noqa: B008 (gradio's idiom)
            s = session(s)
            frames = s.backend.store.frames if s.backend else []
            first = frames[0] if frames else 0
            total = (frames[-1] - first + 1) if frames else 1
            saved = s.save(lambda t: progress((t - first + 1, total), desc="saving"))
            msg = (f"saved frames {saved.first}..{saved.last} to {saved.result} and the "
                   f"training dataset to {saved.dataset}"
                   + (f"; copied both to {s.out}" if s.out is not None else ""))
            return (*view(s, msg), str(saved.result), str(saved.result / "masks.json"),
                    str(saved.result / "overlay.mp4"))

        @_errors
        def on_segment(s, n_animals, progress=gr.Progress()):  # noqa: B008 (gradio's idiom)
            s = session(s)
            src = s.require_open()
            n = int(n_animals) if n_animals else None
            result = s.run_segment(n, lambda k: progress((k, src.n_frames), desc="segmenting"))
            files = [str(result / f) for f in ("tracks.csv", "summary.csv", "masks.json",
                                               "overlay.mp4") if (result / f).exists()]
            first = src.frame(0)
            msg = f"rodentseg-tiny on all {src.n_frames} frames: {result}"
            return (*view(s, msg), draw_tracks(first, result / "tracks.csv"),
                    _table(result / "summary.csv"), _table(result / "tracks.csv"), files)

        open_btn.click(on_open, [state, path], views)
        path.submit(on_open, [state, path], views)
        upload.upload(on_upload, [state, upload], views)
        slider.release(on_slide, [state, slider], views)
        image.select(on_click, [state], views)
        mode.change(on_mode, [state, mode], views)
        obj.input(on_obj, [state, obj], views)
        new_btn.click(on_new, [state], views)
        undo_btn.click(on_undo, [state], views)
        prop_btn.click(on_propagate, [state, n_prop], [*views, review])
        next_btn.click(on_next, [state], views)
        review.select(on_review_select, [state], views)
        save_btn.click(on_save, [state], [*views, saved_path, dl_masks, dl_overlay])
        seg_btn.click(on_segment, [state, animals], [*views, tracks_img, summary, tracks,
                                                      seg_files])
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860,
           max_upload_mb: float = 500, block: bool = True):
    """Serve the app on ``host:port`` with an upload size limit, without share links or SSR.

    Returns:
        What ``gr.Blocks.launch`` returns (app, local URL, share URL).
    """
    return demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                       max_file_size=int(max_upload_mb * 1024 * 1024), theme=THEME, quiet=True,
                       prevent_thread_lock=not block, footer_links=[], show_error=True)
