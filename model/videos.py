"""Videos kept for a while, so the web page (and any client) can show frames, try prompts and
track again without uploading again.

`POST /videos` moves a spooled upload into the store; an indexer thread decodes it once to count
its frames and note where the keyframes are (video.py), so that any frame can be decoded again by
index: the frame the page shows is the frame the server tracks from. Entries expire after
--video_cache_ttl seconds without use and the oldest go first when the store would pass
--video_cache_mb; an entry in use by a job is not removed until the job ends.

Each replica has its own store. Behind a load balancer without session affinity a `video_id`
can land on a replica that does not have it: that is a 404 that says so, and the page uploads
again (README, "Several replicas").
"""

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional

from .errors import BadInput, InsufficientStorage, NotFound, TooLarge
from .uploads import Upload
from .video import VideoLimits, VideoReader

logger = logging.getLogger(__name__)


@dataclass
class StoredVideo:
    video_id: str
    path: str
    size: int
    reader: VideoReader
    created: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)
    users: int = 0
    frame_count: Optional[int] = None  # known once the indexer has decoded every frame
    error: Optional[str] = None
    indexed: threading.Condition = field(default_factory=threading.Condition)
    indexing: bool = True
    dropped: bool = False  # the indexer closes the reader when it sees this

    def describe(self, ttl: float) -> dict:
        info = self.reader.info
        return {"video_id": self.video_id, "width": info.width, "height": info.height,
                "fps": info.fps, "codec": info.codec, "frame_count": self.frame_count,
                "frames_indexed": self.reader.frames_seen,
                "container_frame_count": info.claimed_frames, "size_bytes": self.size,
                "expires_in_s": round(max(0.0, ttl - (time.monotonic() - self.used)), 1),
                "error": self.error}

    def wait_for_frame(self, i: int, timeout: float = 60) -> None:
        """Until frame i has been indexed (decodable by seeking), or the video ended before."""
        with self.indexed:
            self.indexed.wait_for(lambda: self.reader.frames_seen > i or
                                  self.frame_count is not None or self.error is not None,
                                  timeout=timeout)
        if self.reader.frames_seen > i:
            return
        if self.error:
            raise BadInput(f"the video could not be decoded past frame "
                           f"{self.reader.frames_seen}: {self.error}")
        if self.frame_count is not None:
            raise BadInput(f"frame {i} is past the end: the video has {self.frame_count} frames, "
                           f"0..{self.frame_count - 1}")
        raise BadInput(f"frame {i} is not decoded yet; retry shortly")


class VideoStore:
    def __init__(self, directory: str, max_bytes: int, ttl: float, limits: VideoLimits):
        self.directory = directory
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.limits = limits
        self._videos: Dict[str, StoredVideo] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _expire(self, need: int) -> None:
        """Drop expired entries, then the least recently used, until `need` bytes fit."""
        now = time.monotonic()
        for v in list(self._videos.values()):
            if v.users == 0 and now - v.used > self.ttl:
                self._drop(v)
        for v in sorted(self._videos.values(), key=lambda v: v.used):
            if sum(x.size for x in self._videos.values()) + need <= self.max_bytes:
                break
            if v.users == 0:
                self._drop(v)

    def _drop(self, v: StoredVideo) -> None:
        self._videos.pop(v.video_id, None)
        with v.indexed:
            v.dropped = True
            if not v.indexing:  # else the indexer thread closes it: never under its feet
                v.reader.close()
        try:
            os.unlink(v.path)
        except FileNotFoundError:
            pass
        logger.info("video %s removed from the store (%d bytes)", v.video_id, v.size)

    def add(self, upload: Upload) -> StoredVideo:
        """Take the spooled upload into the store (the Upload is handed over)."""
        if not self.enabled:
            raise NotFound("this server keeps no videos (--video_cache_mb 0); send the video "
                           "with each request")
        if upload.size > self.max_bytes:
            raise TooLarge(f"the video is {upload.size // 2**20} MiB; this server keeps videos "
                           f"of at most {self.max_bytes // 2**20} MiB in all (--video_cache_mb)")
        with self._lock:
            self._expire(upload.size)
            if sum(v.size for v in self._videos.values()) + upload.size > self.max_bytes:
                raise InsufficientStorage("the video store is full of videos in use; retry "
                                          "shortly", retry_after=10)
        os.makedirs(self.directory, exist_ok=True)
        video_id = uuid.uuid4().hex[:16]
        path = os.path.join(self.directory, f"{video_id}.video")
        shutil.move(upload.path, path)
        upload.hand_over()
        try:
            reader = VideoReader(path, self.limits)
        except BaseException:
            os.unlink(path)
            raise
        video = StoredVideo(video_id, path, upload.size, reader)
        with self._lock:
            self._videos[video_id] = video
        threading.Thread(target=self._index, args=(video,), name="video-indexer",
                         daemon=True).start()
        return video

    def _index(self, video: StoredVideo) -> None:
        count = 0
        try:
            for _ in video.reader.frames(rgb=False):
                if video.dropped:
                    break
                count += 1
                if count % 8 == 0:
                    with video.indexed:
                        video.indexed.notify_all()
            else:
                video.frame_count = count
        except Exception as exc:  # noqa: BLE001 - reported to whoever asks for the video
            video.error = str(exc)
        with video.indexed:
            video.indexing = False
            if video.dropped:
                video.reader.close()
            video.indexed.notify_all()
        logger.info("video %s indexed: %s frames", video.video_id, video.frame_count)

    def get(self, video_id: str) -> StoredVideo:
        with self._lock:
            self._expire(0)
            video = self._videos.get(video_id)
            if video is None:
                raise NotFound(f"video {video_id!r} is not on this server (expired after "
                               f"{self.ttl:.0f} s unused, removed for room, or uploaded to "
                               f"another replica): upload it again")
            video.used = time.monotonic()
            return video

    def borrow(self, video_id: str) -> "Borrowed":
        """The stored file as a job's upload: kept (not removed) when the job ends."""
        video = self.get(video_id)
        with self._lock:
            video.users += 1
        return Borrowed(self, video)

    def give_back(self, video: StoredVideo) -> None:
        with self._lock:
            video.users -= 1
            video.used = time.monotonic()

    def remove(self, video_id: str) -> None:
        video = self.get(video_id)
        with self._lock:
            if video.users:
                raise BadInput(f"video {video_id} is being tracked; remove it when that ends")
            self._drop(video)

    def close(self) -> None:
        with self._lock:
            for v in list(self._videos.values()):
                self._drop(v)


class Borrowed(Upload):
    """An Upload whose file belongs to the store: `discard` gives it back instead of removing."""

    def __init__(self, store: VideoStore, video: StoredVideo):
        super().__init__(video.path, video.size)
        self._store, self.video = store, video

    def discard(self) -> None:
        if not self._discarded:
            self._discarded = True
            self._store.give_back(self.video)
