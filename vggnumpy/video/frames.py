"""Frames in and out: video files through PyAV (the `video` extra), or folders of numbered images."""
import os
import re
from fractions import Fraction

import numpy as np

from ..files import images
from ..files.images import ImageError
from ..files.paths import InputError, atomic_write, check_input

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi")     # outputs: containers that take H.264 (WebM does not)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("reading and writing video needs PyAV: pip install 'vggnumpy[video]'") from None
    return av


def is_video_path(path):
    """True for an output named like a video file (.mp4, .mov, .mkv, .avi); False for a folder."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTS and not os.path.isdir(path)


def frame_name(folder, index):
    """folder/frame_00001.png: the numbered output frame `index` (1-based)."""
    return os.path.join(folder, f"frame_{index:05d}.png")


def even_size(w, h):
    """(w, h) with each side rounded down to even (yuv420p halves the chroma), at least 2."""
    return max(2, w - w % 2), max(2, h - h % 2)


def _checked(what, path, folder=False):
    """paths.check_input (a named pipe, a device, a missing file refused before it is opened), as an ImageError."""
    try:
        check_input(what, path, folder)
    except InputError as e:
        raise ImageError(str(e)) from None


def _check_link(folder, path):
    """Refuse a frame that is a link leading out of the frames folder, or a broken link; a link to a file inside the
    folder (or a folder below it) is read."""
    if not os.path.islink(path):
        return
    target = os.readlink(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: the frame is a broken link (to {target}); remove it or point it at a frame")
    root, real = os.path.realpath(folder), os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise ImageError(f"{path}: the frame is a link to {real}, outside the folder {folder}; copy that file into "
                         f"the folder or remove the link")


def _numbered(folder):
    """The image files of a folder in the order of the last number in their names; links out of the folder and
    broken links are refused."""
    found = []
    for name in os.listdir(folder):
        if os.path.splitext(name)[1].lower() not in IMAGE_EXTS:
            continue
        _check_link(folder, os.path.join(folder, name))
        digits = re.findall(r"\d+", name)
        if not digits:
            raise ImageError(f"{os.path.join(folder, name)}: a frame's name needs a number (frame_0001.png); "
                             f"rename it or move it out of {folder}")
        found.append((int(digits[-1]), name))
    if not found:
        raise ImageError(f"{folder}: no numbered images (.png, .jpg, ...) in the folder; give a video or a folder of "
                         f"frames such as frame_0001.png")
    return [os.path.join(folder, name) for _, name in sorted(found)]


class FrameSource:
    """The frames of a video file or a folder of numbered images: fps (Fraction), count, size (w, h), first (the
    first frame, decoded); iterating yields (H, W, 3) uint8 RGB frames one at a time.

    Checked when opened, before any frame is styled: the input is a regular file or a folder (a named pipe would
    block), a video stream's declared size and every folder frame's header (size within images.MAX_INPUT_PIXELS,
    one size for all, an image Pillow reads, no link out of the folder)."""

    def __init__(self, path, fps=None):
        self.path = path
        if os.path.isdir(path):
            self.files = _numbered(path)
            self.fps, self.count = Fraction(fps if fps is not None else 24), len(self.files)
            self.size = self._headers()
            self.first = self._image(self.files[0])
        else:
            _checked("input video", path, folder=path.endswith(("/", os.sep)))
            self.files = None
            self.fps, self.count, self.first = self._probe()
            self.size = (self.first.shape[1], self.first.shape[0])

    def _headers(self):
        """(w, h) of a folder's frames, from every frame's header (nothing decoded): each one readable, within the
        pixel limit, and of one size."""
        size = None
        for path in self.files:
            wh = images.open_image(path, "frame", lambda im: im.size)
            if size is None:
                size = wh
            elif wh != size:
                raise ImageError(f"{path}: this frame is {wh[0]}x{wh[1]}, the first {size[0]}x{size[1]}; every "
                                 f"frame must have one size")
        return size

    def _image(self, path):
        """A folder's frame as (H, W, 3) uint8 RGB, read as images.load_image reads a still (16-bit grey scaled,
        transparency over white)."""
        return images.open_image(path, "frame", lambda im: images.to_uint8(images.to_rgb(im)))

    def _check_size(self, w, h):
        if w and h:
            images.check_pixels(self.path, "a frame of the video", w, h)

    def _open(self):
        av = _av()
        try:
            c = av.open(self.path)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise ImageError(f"{self.path}: not a video PyAV can read ({e}); give a video file or a folder of "
                             f"frames") from None
        if not c.streams.video:
            c.close()
            raise ImageError(f"{self.path}: the file has no video stream")
        return c

    def _probe(self):
        """(fps, frame count, first frame) of a video file; the frames are counted by decoding when not stated."""
        av = _av()
        with self._open() as c:
            s = c.streams.video[0]
            self._check_size(s.codec_context.width, s.codec_context.height)     # the stream's header: not decoded
            fps = Fraction(s.average_rate) if s.average_rate else Fraction(24)
            count, first = 0, None
            try:
                for f in c.decode(video=0):
                    self._check_size(f.width, f.height)
                    count += 1
                    first = f.to_ndarray(format="rgb24") if first is None else first
            except av.error.FFmpegError as e:
                raise ImageError(f"{self.path}: the video cannot be decoded ({e})") from None
        if first is None:
            raise ImageError(f"{self.path}: the video has no frames")
        return fps, count, first

    def __iter__(self):
        if self.files is not None:
            for path in self.files:
                frame = self._image(path)
                if (frame.shape[1], frame.shape[0]) != self.size:
                    raise ImageError(f"{path}: this frame is {frame.shape[1]}x{frame.shape[0]}, the first "
                                     f"{self.size[0]}x{self.size[1]}; every frame must have one size")
                yield frame
            return
        with self._open() as c:
            for f in c.decode(video=0):
                self._check_size(f.width, f.height)
                yield f.to_ndarray(format="rgb24")


def open_frames(path, fps=None):
    """The FrameSource of a video file or a folder of numbered images (fps: a folder's frame rate, default 24)."""
    return FrameSource(os.fspath(path), fps)


def write_video(path, frames, fps, metadata=None):
    """Encode (H, W, 3) uint8 frames (even sides) as H.264 yuv420p at `fps`, atomically; metadata: container tags."""
    av = _av()
    ext = os.path.splitext(path)[1].lower()
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with atomic_write(path, suffix=ext) as tmp:
        with av.open(tmp, "w") as c:
            for k, v in (metadata or {}).items():
                c.metadata[k] = str(v)
            stream = None
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"{path}: yuv420p video needs even sides, not {w}x{h}")
                    stream = c.add_stream(codec, rate=Fraction(fps).limit_denominator(100000))
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.options = {"crf": "18"} if codec == "libx264" else {}
                if frame.shape != (stream.height, stream.width, 3):
                    raise ValueError(f"{path}: a frame is {frame.shape[1]}x{frame.shape[0]}, the first "
                                     f"{stream.width}x{stream.height}; every frame must have one size")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    c.mux(packet)
            if stream is None:
                raise ValueError(f"{path}: no frames to write")
            for packet in stream.encode():
                c.mux(packet)


def read_metadata(path):
    """The container tags of a video file (what write_video's metadata put there)."""
    av = _av()
    try:
        with av.open(path) as c:
            return {k.lower(): v for k, v in c.metadata.items()}        # Matroska stores the keys in upper case
    except (av.error.FFmpegError, OSError) as e:
        raise ImageError(f"{path}: not a video PyAV can read ({e})") from None
