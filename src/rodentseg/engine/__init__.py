"""Engines that run ``rodentseg segment`` over many videos: the input expansion shared by all,
and the Ray engine (:func:`segment_videos_ray`, needs the ``ray`` extra). The local engine is
:func:`rodentseg.segment.segment_videos` and needs nothing more.
"""

from rodentseg.engine.inputs import VIDEO_EXTENSIONS, expand_videos
from rodentseg.engine.ray_engine import VideoResult, segment_task, segment_videos_ray, summary_table

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "VIDEO_EXTENSIONS", "VideoResult", "expand_videos", "segment_task",
           "segment_videos_ray", "summary_table"]
