"""Sound devices and what stands in for them: blocks of captured audio in (:class:`AudioSource`:
a microphone, or a file at real-time pace), one speaker played out (:class:`AudioSink`).

sounddevice (the ``tisdiss[live]`` extra) is imported only when a device is opened.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from . import files

BLOCK_SECONDS = 0.02  # capture block


class MissingExtra(ImportError):
    """An optional dependency is not installed; ``str()`` is the one line to show."""


def import_sounddevice() -> ModuleType:
    """sounddevice, or :class:`MissingExtra` naming what to install."""
    try:
        import sounddevice
    except ImportError:
        raise MissingExtra("tisdiss: live separation needs sounddevice: pip install 'tisdiss[live]'") from None
    except OSError:  # the wheel is there but the PortAudio library is not
        raise MissingExtra(
            "tisdiss: live separation needs the PortAudio library (e.g. apt install libportaudio2)"
        ) from None
    return sounddevice


class AudioSource(Protocol):
    """Blocks of captured audio, frames first."""

    sample_rate: int
    channels: int
    overflows: int  # blocks the device dropped because they were not read in time
    name: str  # what error messages about its samples name: the file, or "microphone"

    def start(self) -> None: ...

    def read(self, timeout: float) -> np.ndarray | None:
        """The next block ``[n, channels]`` float32 (``n == 0`` when none came within ``timeout``),
        or None once the source has ended."""
        ...

    def stop(self) -> None: ...


class AudioSink(Protocol):
    """Playback of one speaker: mono float32 blocks at the stream's output rate."""

    def start(self) -> None: ...

    def write(self, block: np.ndarray) -> None: ...

    def stop(self) -> None: ...


class FileSource:
    """A file delivered as a microphone would deliver it: ``block_seconds`` blocks at real-time pace.

    ``clock`` and ``sleep`` can be a fake clock's, for tests that should not wait in real time.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        block_seconds: float = BLOCK_SECONDS,
        realtime: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = str(path)
        self.data, self.sample_rate = files.read(path)
        self.data = self.data.astype(np.float32)
        self.channels = self.data.shape[1]
        self.block = max(1, int(round(block_seconds * self.sample_rate)))
        self.realtime, self.clock, self.sleep = realtime, clock, sleep
        self.position = 0
        self.overflows = 0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = self.clock()

    def read(self, timeout: float) -> np.ndarray | None:
        if self.position >= len(self.data):
            return None
        end = min(len(self.data), self.position + self.block)
        if self.realtime:
            wait = self._t0 + end / self.sample_rate - self.clock()
            if wait > timeout:
                self.sleep(timeout)
                return self.data[:0]
            if wait > 0:
                self.sleep(wait)
        block, self.position = self.data[self.position : end], end
        return block

    def stop(self) -> None:
        pass


class MicrophoneSource:
    """An input device through sounddevice's ``InputStream``; the callback queues copies of its blocks."""

    def __init__(
        self, sample_rate: int, channels: int = 1, *, device: Any = None, block_seconds: float = BLOCK_SECONDS
    ):
        self._sd = import_sounddevice()
        self.name = "microphone"
        self.sample_rate, self.channels = sample_rate, channels
        self.overflows = 0
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._stream = self._sd.InputStream(
            samplerate=sample_rate,
            channels=channels,
            dtype="float32",
            device=device,
            blocksize=max(1, int(round(block_seconds * sample_rate))),
            callback=self._callback,
        )

    def _callback(self, data: np.ndarray, frames: int, when: object, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._queue.put(data.copy())

    def start(self) -> None:
        self._stream.start()

    def read(self, timeout: float) -> np.ndarray | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return np.zeros((0, self.channels), np.float32)

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()


class SpeakerSink:
    """Plays mono blocks on an output device; silence while its buffer is empty."""

    def __init__(self, sample_rate: int, *, device: Any = None) -> None:
        sd = import_sounddevice()
        self._buffer: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._stream = sd.OutputStream(
            samplerate=sample_rate, channels=1, dtype="float32", device=device, callback=self._callback
        )

    def _callback(self, out: np.ndarray, frames: int, when: object, status: object) -> None:
        filled = 0
        with self._lock:
            while filled < frames and self._buffer:
                head = self._buffer[0]
                n = min(frames - filled, len(head))
                out[filled : filled + n, 0] = head[:n]
                filled += n
                if n == len(head):
                    self._buffer.popleft()
                else:
                    self._buffer[0] = head[n:]
        out[filled:] = 0.0

    def start(self) -> None:
        self._stream.start()

    def write(self, block: np.ndarray) -> None:
        if len(block):
            with self._lock:
                self._buffer.append(np.clip(block, -1.0, 1.0).astype(np.float32))

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()
