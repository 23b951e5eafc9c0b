"""Identities across frames and behaviour readouts.

- :func:`split_instances`: one mask per animal from a probability map;
- :class:`Tracker`: stable ``track_id`` s (motion, overlap, appearance; merges and occlusions);
- :class:`Probation`: which tracks are animals when their number is not given;
- :func:`finalize`: speeds, summary, heatmaps, review log and exports of a result folder;
- :func:`track_masks`: ``rodentseg track``, relinking instance masks from any source.
"""

from rodentseg.track.events import TrackEvent
from rodentseg.track.instances import Instances, split_instances
from rodentseg.track.probation import Probation
from rodentseg.track.readouts import finalize
from rodentseg.track.run import TrackOptions, track_masks
from rodentseg.track.tracker import Tracker

__all__ = ["Instances", "Probation", "TrackEvent", "TrackOptions", "Tracker", "finalize",
           "split_instances", "track_masks"]

