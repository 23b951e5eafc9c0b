"""Forward/backward consistency of a session's propagated masks (the ``fb`` review cue)."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from rodentseg.annotate.prompts import Prompt
from rodentseg.annotate.session import TrackedObject, VideoSession


def check_consistency(session: VideoSession, progress: bool = False) -> int:
    """Propagate every run of frames again the opposite way and store the agreement.

    For each object and each run of frames propagated from one prompted frame, the stored
    mask at the far end of the run seeds a fresh propagation (as a mask prompt) back toward
    the prompted frame; the IoU of the two masks on each frame in between is stored as
    :attr:`ObjectMask.fb_iou`. Low agreement marks frames where the tracker drifted or
    switched animals (the forward-backward check of Kalal et al., "Forward-Backward Error",
    ICPR 2010, applied to masks). Costs about one more propagation; stored masks do not
    change.

    Returns:
        The number of (frame, object) pairs checked.
    """
    checked = 0
    for reverse in (True, False):
        runs: dict[int, list[TrackedObject]] = {}  # seed frame -> temporary objects
        stops: dict[int, int] = {}  # id(temporary object) -> last frame to check
        for obj in session.objects.values():
            marks = sorted(obj.prompts)
            for a in marks:
                if reverse and a >= obj.origin:  # forward run a .. b-1, check b-2 .. a+1
                    b = min([m for m in marks if m > a], default=session.n_frames)
                    seed, stop = b - 1, a + 1
                elif not reverse and a <= obj.origin:  # backward run a .. b+1
                    b = max([m for m in marks if m < a], default=-1)
                    seed, stop = b + 1, a - 1
                else:
                    continue
                if (seed - 1 < stop) if reverse else (seed + 1 > stop):
                    continue  # no frame between the seed and the prompted frame
                tmp = TrackedObject(obj.obj_id, seed, None)
                runs.setdefault(seed, []).append(tmp)
                stops[id(tmp)] = stop
        if not runs:
            continue
        frames = (session.frames.backward(max(runs)) if reverse
                  else session.frames.forward(min(runs)))
        live: list[TrackedObject] = []
        for t, frame in tqdm(frames, disable=not progress, unit="frame",
                             desc="check " + ("backward" if reverse else "forward")):
            stored = session.store.get(t)
            for tmp in runs.pop(t, []):
                if tmp.obj_id not in stored or not stored[tmp.obj_id].mask.any():
                    continue  # nothing to seed with
                tmp.state = session.model.new_state(session.height, session.width)
                tmp.state.cache = session._cache
                tmp.prompts[t] = Prompt.make(t, tmp.obj_id, mask=stored[tmp.obj_id].mask)
                session._run_prompt(tmp, tmp.prompts[t], session._pixels(frame))
                live.append(tmp)
            todo = [o for o in live if o.origin != t]
            if todo:
                out = session._step(todo, t, frame, reverse)
                update = {}
                for o in todo:
                    mine = stored.get(o.obj_id)
                    if mine is not None and out[o.obj_id] is not None:
                        a, b = mine.mask, out[o.obj_id].mask
                        union = np.count_nonzero(a | b)
                        mine.fb_iou = np.count_nonzero(a & b) / union if union else 1.0
                        update[o.obj_id] = mine
                        checked += 1
                session.store.update(t, update)
            live = [o for o in live if o.origin == t or stops[id(o)] != t]
            if not runs and not live:
                break
    return checked
