"""Maps: the dict-like :class:`Map`, key/value codecs, and (in sibling modules) ring and perf buffer readers."""
from .codec import Codec
from .map import Map, MapInfo

__all__ = ["Codec", "Map", "MapInfo"]
