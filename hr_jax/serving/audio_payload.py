"""Audio a client sends: base64 in an `input_audio` part, or a `data:` URL in vLLM's `audio_url`.

Decoded in memory only (nothing the client sends touches the file system), by soundfile
(libsndfile: WAV, FLAC, MP3), to a mono float waveform and its sample rate.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from hr_jax.serving.errors import RequestError

FORMATS = ("wav", "mp3", "flac")  # what `input_audio.format` may say


def decode_base64(data: object, param: str) -> bytes:
    """The bytes of a base64 string (standard alphabet, padding optional); a 400 naming `param` if not."""
    if not isinstance(data, str) or not data:
        raise RequestError(f"{param} must be a non-empty base64 string", param)
    text = "".join(data.split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"{param} is not valid base64 ({e})", param) from None


def from_input_audio(part: dict, param: str) -> tuple[np.ndarray, int]:
    """An OpenAI `{"data": <base64>, "format": "wav" | "mp3" | "flac"}` object."""
    if not isinstance(part, dict):
        raise RequestError(f"{param} must be an object with 'data' and 'format'", param)
    fmt = part.get("format")
    if fmt not in FORMATS:
        raise RequestError(
            f"{param}.format {fmt!r} is not supported; use one of {', '.join(FORMATS)}", f"{param}.format"
        )
    return decode_audio(decode_base64(part.get("data"), f"{param}.data"), f"{param}.data")


def from_data_url(part: object, param: str) -> tuple[np.ndarray, int]:
    """vLLM's `audio_url`: `{"url": "data:audio/<type>;base64,<data>"}` (or the URL string itself).
    Only `data:` URLs: the server fetches nothing."""
    url = part.get("url") if isinstance(part, dict) else part
    if not isinstance(url, str) or not url.startswith("data:"):
        raise RequestError(
            f"{param}.url must be a data: URL (data:audio/wav;base64,...); the server fetches nothing",
            f"{param}.url",
        )
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise RequestError(
            f"{param}.url must be a base64 data: URL (data:audio/wav;base64,...)", f"{param}.url"
        )
    return decode_audio(decode_base64(data, f"{param}.url"), f"{param}.url")


def decode_audio(raw: bytes, param: str) -> tuple[np.ndarray, int]:
    """`(waveform [n] float32 (channels averaged), sample rate)` of an encoded file's bytes."""
    import soundfile as sf

    if not raw:
        raise RequestError(f"{param} is empty", param)
    try:
        data, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors: not audio, truncated, unknown container
        raise RequestError(f"{param} could not be decoded as audio ({e})", param) from None
    if data.size == 0:
        raise RequestError(f"{param} holds no audio samples", param)
    return data.mean(axis=1), int(rate)
