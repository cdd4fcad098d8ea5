"""Loading and validating one shipped model: ``<target>.onnx`` next to ``<target>.card.json``."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edge.forecast.calibration import CalibrationError, IntervalCalibration, parse_calibration
from edge.forecast.features import FEATURES, HORIZON, WEATHER_OF

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
    interval: IntervalCalibration
    clip_scaled: tuple[float, float]
    zero_without_sun: bool
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
        clip = (float(post["clip_scaled"][0]), float(post["clip_scaled"][1]))
        scale = float(card["scale_kw"])
        want_in, want_out = spec["inputs"], spec["outputs"]
        block = card.get("interval_calibration")
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ModelError(f"{cpath}: invalid model card: {_one_line(exc)}") from exc
    try:
        interval = parse_calibration(block, HORIZON)
    except CalibrationError as exc:
        raise ModelError(f"{cpath}: invalid model card: {_one_line(exc)}") from exc
    if not (all(map(math.isfinite, clip)) and clip[0] <= clip[1]):
        raise ModelError(f"{cpath}: invalid model card: postprocess.clip_scaled = {list(clip)}: "
                         "not finite or lower bound above upper")
    if not (math.isfinite(scale) and scale > 0):
        raise ModelError(f"{cpath}: invalid model card: scale_kw = {scale}: not a positive number")
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ModelError(f"{cpath}: unknown features {unknown}")
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
        features=features, requires_weather=weather, scale_kw=scale, interval=interval, clip_scaled=clip,
        zero_without_sun=bool(post.get("zero_without_sun", False)),
        sha256=hashlib.sha256(raw).hexdigest(), signature=signature,
    )
