"""Where files go and how they are written: the cache folder, the environment, and atomic writes with the umask's \
mode."""
import contextlib
import os
import stat
import tempfile


def cache_dir():
    """Where downloaded and converted weights live: $VGGNUMPY_CACHE, else ~/.cache/vggnumpy. OutputError when
    $VGGNUMPY_CACHE names something that is not a folder."""
    env = os.environ.get("VGGNUMPY_CACHE")
    if env and os.path.exists(env) and not os.path.isdir(env):
        raise OutputError(f"VGGNUMPY_CACHE={env}: names a file, not a folder; set VGGNUMPY_CACHE to a folder (it is "
                          f"made when missing) or unset it to use ~/.cache/vggnumpy")
    return env or os.path.join(os.path.expanduser("~"), ".cache", "vggnumpy")


def make_folder(folder, what):
    """Create `folder` and its parents unless it exists; OutputError naming it when a file is in the way or it
    cannot be made. Returns folder."""
    if os.path.isdir(folder):
        return folder
    if os.path.lexists(folder):
        raise OutputError(f"{folder}: the {what} is a file, not a folder; move the file or choose another folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: the {what} cannot be made ({e.strerror or e}); choose a folder you can "
                          f"write to") from None
    return folder


def offline():
    """True when $VGGNUMPY_OFFLINE is set: no network step is tried, cached files are still used."""
    return bool(os.environ.get("VGGNUMPY_OFFLINE"))



def open_mode(path):
    """The mode a plain open(path, 'w') leaves: an existing file keeps its own, a new one gets 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0o22)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, suffix=".part"):
    """Yield a temporary path beside `path`; on success it is renamed over `path` with open_mode(path).

    The temporary file is removed on any exception, KeyboardInterrupt and SystemExit included, so an
    interrupted write leaves neither a partial output nor a stray temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".vggnumpy-", dir=folder)
    except OSError as e:
        raise _write_error(path, e) from None
    os.close(fd)
    try:
        try:
            yield tmp
            os.chmod(tmp, open_mode(path))
            os.replace(tmp, path)
        except OSError as e:
            raise _write_error(path, e) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_error(path, e):
    """OutputError naming the file an OSError stopped us writing, and what to do."""
    import errno
    if isinstance(e, OutputError):
        return e
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "no space is left on the device (or the quota is used up); free some space or write elsewhere"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "permission denied; choose a folder you can write to"
    elif e.errno == errno.EISDIR:
        todo = "a folder of that name is in the way; give a file name"
    else:
        todo = f"{e.strerror or e}; check the folder"
    return OutputError(f"{path}: cannot be written: {todo} (nothing was written)")


class OutputError(ValueError):
    """An output that cannot be written or would overwrite an input or another output; the message names both."""


def same_file(a, b):
    """True when paths a and b name one file: the same real path, or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_writable(what, path):
    """Refuse, before any work, an output whose folder is missing or read-only, or that is a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: the folder {folder} for the {what} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: the folder {folder} for the {what} is not writable")
    if os.path.isdir(path):
        raise OutputError(f"{path}: the {what} is a folder; give a file name")


def frame_path(output, iteration):
    """OUT_NNNN.ext: the frame of `iteration` beside the output (the one place this name is made)."""
    stem, ext = os.path.splitext(output)
    return f"{stem}_{iteration:04d}{ext}"


def is_frame(path, output, every, total):
    """True when `path` is one of the frames frame_path(output, n) written every `every` iterations up to `total`."""
    stem, ext = os.path.splitext(os.path.basename(output))
    name = os.path.basename(path)
    if not (os.path.realpath(os.path.dirname(os.path.abspath(path)))
            == os.path.realpath(os.path.dirname(os.path.abspath(output)))):
        return False
    digits = name[len(stem) + 1:len(name) - len(ext)] if name.startswith(stem + "_") and name.endswith(ext) else ""
    if not (digits.isascii() and digits.isdigit()):
        return False
    n = int(digits)
    return os.path.basename(frame_path(output, n)) == name and 0 < n <= total and n % every == 0


def check_outputs(outputs, inputs, frames=None):
    """Refuse outputs that resolve to an input or to each other, before any work.

    outputs, inputs: lists of (what, path); frames: (output, every, total) when frames OUT_NNNN.ext are written.
    """
    for i, (what, path) in enumerate(outputs):
        check_writable(what, path)
        for iwhat, ipath in inputs:
            if same_file(path, ipath):
                raise OutputError(f"{path}: the {what} would overwrite an input, the {iwhat} ({ipath}); "
                                  f"choose another name")
        for owhat, opath in outputs[:i]:
            if same_file(path, opath):
                raise OutputError(f"{path}: the {what} and the {owhat} are the same file; give them different names")
    if frames is not None:
        output, every, total = frames
        for what, path in inputs + [o for o in outputs if o[1] != output]:
            if is_frame(path, output, every, total):
                raise OutputError(f"{path}: a frame written every {every} iterations beside {output} would overwrite "
                                  f"the {what}; choose another output name or --save-every")


class InputError(ValueError):
    """An input path that cannot be read: missing, a folder, or not a regular file; the message names it."""


def check_input(what, path, folder=False):
    """Refuse, before it is opened, an input that is missing or not a regular file (a named pipe, a device, a
    socket: open() on a FIFO blocks for ever), or, with folder=True, not a folder. Links are followed. Raises
    InputError naming the file and what to do."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} {'folder' if folder else 'file'} not found; check the path") from None
    except OSError as e:
        raise InputError(f"{path}: {what} cannot be read ({e.strerror or e}); check the path") from None
    if folder:
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path}: {what} is not a folder; give a folder")
        return
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: {what} is a folder, not a file; give a file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise InputError(f"{path}: {what} is {kind}, not a regular file; vggnumpy reads only regular files: save "
                         f"the data to a file and give its name")
