"""Loading and validating one shipped model: ``<target>.onnx`` next to ``<target>.card.json``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edge.forecast.features import FEATURES, WEATHER_OF

__all__ = ["LoadedModel", "ModelError", "card_path", "file_signature", "load_model"]


class ModelError(ValueError):
    """A model that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    target: str
    path: Path
    card: Mapping[str, Any]
    session: ort.InferenceSession
    input_name: str
    output_name: str
    features: tuple[str, ...]
    requires_weather: tuple[str, ...]
    scale_kw: float
    calibration: tuple[tuple[float, float], ...]
    bucket_ends: tuple[int, ...]
    clip_scaled: tuple[float, float]
    zero_without_sun: bool
    min_half_width: float
    sha256: str
    signature: tuple[int, ...]


def card_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + ".card.json")


def file_signature(onnx_path: Path) -> tuple[int, ...]:
    """(mtime_ns, size, inode) of the model and its card; () when either is missing."""
    try:
        a, b = os.stat(onnx_path), os.stat(card_path(onnx_path))
    except OSError:
        return ()
    return (a.st_mtime_ns, a.st_size, a.st_ino, b.st_mtime_ns, b.st_size, b.st_ino)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _shape(dims: Sequence[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in dims]


def _check_io(path: Path, card_file: Path, kind: str, got: Sequence[Any],
              want: Sequence[Mapping[str, Any]]) -> None:
    got_io = [(x.name, _shape(x.shape)) for x in got]
    want_io = [(str(x["name"]), _shape(x["shape"])) for x in want]
    if len(got_io) != len(want_io):
        raise ModelError(f"{path}: has {len(got_io)} {kind}s, {card_file.name} says {len(want_io)}")
    for (gn, gs), (wn, ws) in zip(got_io, want_io, strict=True):
        if gn != wn:
            raise ModelError(f"{path}: {kind} is named {gn!r}, {card_file.name} says {wn!r}")
        if gs != ws:
            raise ModelError(f"{path}: {kind} {gn!r} has shape {gs}, {card_file.name} says {ws}")


def load_model(onnx_path: Path) -> LoadedModel:
    """Load and validate a model against its card; raise ModelError (one line) if unusable."""
    path = Path(onnx_path)
    cpath = card_path(path)
    signature = file_signature(path)
    if not path.exists():
        raise ModelError(f"{path}: model file missing")
    if not cpath.exists():
        raise ModelError(f"{cpath}: model card missing")
    try:
        card = json.loads(cpath.read_text())
        spec = card["onnx"]
        features = tuple(str(f) for f in card["features"])
        target = str(card["target"])
        post = card["postprocess"]
        calibration = tuple((float(a), float(b)) for a, b in post["interval_calibration"])
        bucket_ends = tuple(int(b[1]) for b in post["lead_buckets"])
        clip = (float(post["clip_scaled"][0]), float(post["clip_scaled"][1]))
        min_half_width = float(post.get("min_half_width_scaled", 0.0))
        scale = float(card["scale_kw"])
        want_in, want_out = spec["inputs"], spec["outputs"]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(f"{cpath}: invalid model card: {_one_line(exc)}") from exc
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ModelError(f"{cpath}: unknown features {unknown}")
    if len(calibration) != len(bucket_ends):
        raise ModelError(f"{cpath}: {len(calibration)} calibrations for {len(bucket_ends)} buckets")
    raw = path.read_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(raw, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: not a valid ONNX model: {_one_line(exc)}") from exc
    _check_io(path, cpath, "input", session.get_inputs(), want_in)
    _check_io(path, cpath, "output", session.get_outputs(), want_out)
    n_in = _shape(want_in[0]["shape"])[-1]
    if n_in != len(features):
        raise ModelError(f"{cpath}: {len(features)} features listed, input takes {n_in}")
    if _shape(want_out[0]["shape"])[-1] != 3:
        raise ModelError(f"{path}: output must hold 3 quantiles (P10, P50, P90)")
    weather = tuple(sorted({WEATHER_OF[f] for f in features if f in WEATHER_OF}))
    return LoadedModel(
        target=target, path=path, card=card, session=session,
        input_name=session.get_inputs()[0].name, output_name=session.get_outputs()[0].name,
        features=features, requires_weather=weather, scale_kw=scale, calibration=calibration,
        bucket_ends=bucket_ends, clip_scaled=clip,
        zero_without_sun=bool(post.get("zero_without_sun", False)), min_half_width=min_half_width,
        sha256=hashlib.sha256(raw).hexdigest(), signature=signature,
    )
