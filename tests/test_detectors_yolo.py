"""The YOLO detector plugins on tiny ONNX graphs that answer known boxes whatever they see.

Each graph takes the input shape of a real export and returns a constant output (plus 0 x the
input's mean, so the input is consumed) in its layout's format, with boxes placed in the
letterboxed network input of a 640x360 picture: the plugin must undo the letterbox, apply the
score threshold, the label map and class-aware NMS, and report exactly these detections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from analytics.config import Yolov5OnnxDetectorConfig, Yolov8OnnxDetectorConfig
from analytics.detectors import Yolov5OnnxDetector, Yolov8OnnxDetector, create_detector
from common.types import Detection
from xueliang.config import ConfigError, load_config

Floats = npt.NDArray[np.float32]
PICTURE = np.zeros((360, 640, 3), np.uint8)  # width 640, height 360
ANCHORS = 100  # more anchors than the 84 or 85 channels, as in every real export
PERSON, CAR, TRUCK, DOG = 0, 2, 7, 16  # COCO class ids

# (x1, y1, x2, y2) in picture pixels, class id, class score.
BOXES = [
    ((64, 36, 192, 288), PERSON, 0.9),
    ((72, 45, 200, 297), PERSON, 0.8),  # IoU 0.82 with the first person: suppressed
    ((64, 36, 192, 288), CAR, 0.7),  # the first person's box, another class: kept
    ((576, 180, 704, 360), TRUCK, 0.6),  # runs off the right edge: clipped
    ((320, 180, 384, 270), DOG, 0.05),  # below min_score
]
# What the plugin reports: (label, score, normalized box), best first.
EXPECTED = [
    ("person", 0.9, (0.1, 0.1, 0.3, 0.8)),
    ("car", 0.7, (0.1, 0.1, 0.3, 0.8)),
    ("truck", 0.6, (0.9, 0.5, 1.0, 1.0)),
]


def centred(scale: float, top: float) -> list[tuple[float, float, float, float]]:
    """BOXES as (cx, cy, w, h) in a network input the picture was scaled into by `scale`
    and placed `top` pixels down (centred horizontally with no side borders)."""
    return [
        ((x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale + top, (x2 - x1) * scale, (y2 - y1) * scale)
        for (x1, y1, x2, y2), _, _ in BOXES
    ]


def yolov8_rows(scale: float = 1.0, top: float = 140.0) -> Floats:
    """ANCHORS x (4 + 80): cx, cy, w, h, class scores; unused anchors score 0."""
    rows = np.zeros((ANCHORS, 4 + 80), np.float32)
    for row, box, (_, class_id, score) in zip(rows, centred(scale, top), BOXES, strict=False):
        row[:4] = box
        row[4 + class_id] = score
    return rows


def yolov5_rows() -> Floats:
    """ANCHORS x (5 + 80): cx, cy, w, h, objectness, class scores. The score is objectness x
    class score; two more anchors fail on one or the other."""
    rows = np.zeros((ANCHORS, 5 + 80), np.float32)
    for row, box, (_, class_id, score) in zip(rows, centred(1.0, 140.0), BOXES, strict=False):
        row[:4] = box
        row[4] = 1.0
        row[5 + class_id] = score
    rows[len(BOXES), :5] = (320, 320, 50, 50, 0.9)  # objectness 0.9 x car 0.1 = 0.09
    rows[len(BOXES), 5 + CAR] = 0.1
    rows[len(BOXES) + 1, :5] = (100, 300, 50, 50, 0.05)  # objectness below min_score
    rows[len(BOXES) + 1, 5 + CAR] = 1.0
    return rows


def tiny_model(path: Path, output: Floats, input_shape: list[int | str]) -> Path:
    """A graph with one input of `input_shape` (NCHW float32) answering `output`."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)
    answer = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "constant"], ["output0"]),
        ],
        "tiny_yolo",
        [images],
        [answer],
        [
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
            numpy_helper.from_array(output, "constant"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def summary(found: list[Detection]) -> list[tuple[str, float, tuple[float, ...]]]:
    """(label, score, box) of each detection, rounded off float32 noise."""
    return [
        (d.label, round(d.score, 5), tuple(round(v, 5) for v in d.box.to_list())) for d in found
    ]


@pytest.mark.parametrize("channels_first", [True, False], ids=["4+C x N", "N x 4+C"])
def test_yolov8_layouts_give_the_known_detections(tmp_path: Path, channels_first: bool) -> None:
    rows = yolov8_rows()
    output = (rows.T if channels_first else rows)[np.newaxis].copy()
    model = tiny_model(tmp_path / "yolov8.onnx", output, [1, 3, 640, 640])
    detector = create_detector(Yolov8OnnxDetectorConfig(model=model))
    assert isinstance(detector, Yolov8OnnxDetector)
    assert summary(detector.detect(PICTURE)) == EXPECTED


def test_yolov5_layout_scores_objectness_times_class(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "yolov5.onnx", yolov5_rows()[np.newaxis], [1, 3, 640, 640])
    detector = create_detector(Yolov5OnnxDetectorConfig(model=model))
    assert isinstance(detector, Yolov5OnnxDetector)
    assert summary(detector.detect(PICTURE)) == EXPECTED


def test_dynamic_input_is_letterboxed_to_a_stride_aligned_rectangle(tmp_path: Path) -> None:
    # 640x360 scaled to a longest side of 320 is 320x180, padded to 320x192: 6 px on top.
    output = yolov8_rows(scale=0.5, top=6.0).T[np.newaxis].copy()
    model = tiny_model(tmp_path / "dynamic.onnx", output, ["batch", 3, "height", "width"])
    detector = create_detector(Yolov8OnnxDetectorConfig(model=model, input_size=320))
    assert summary(detector.detect(PICTURE)) == EXPECTED


def test_label_map_and_keep_choose_what_is_reported(tmp_path: Path) -> None:
    output = yolov8_rows().T[np.newaxis].copy()
    model = tiny_model(tmp_path / "yolov8.onnx", output, [1, 3, 640, 640])
    named = Yolov8OnnxDetectorConfig(model=model, labels={PERSON: "pedestrian", CAR: "vehicle"})
    assert summary(create_detector(named).detect(PICTURE)) == [
        ("pedestrian", 0.9, (0.1, 0.1, 0.3, 0.8)),
        ("vehicle", 0.7, (0.1, 0.1, 0.3, 0.8)),
    ]  # the truck and the dog have no name here
    listed = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
    kept = Yolov8OnnxDetectorConfig(model=model, labels=listed, keep=["truck"])
    assert summary(create_detector(kept).detect(PICTURE)) == [EXPECTED[2]]


def test_max_detections_keeps_the_best(tmp_path: Path) -> None:
    output = yolov8_rows().T[np.newaxis].copy()
    model = tiny_model(tmp_path / "yolov8.onnx", output, [1, 3, 640, 640])
    config = Yolov8OnnxDetectorConfig(model=model, max_detections=2)
    assert summary(create_detector(config).detect(PICTURE)) == EXPECTED[:2]


def test_a_model_that_does_not_fit_is_refused_at_start(tmp_path: Path) -> None:
    yolov8 = yolov8_rows().T[np.newaxis].copy()
    model = tiny_model(tmp_path / "yolov8.onnx", yolov8, [1, 3, 640, 640])
    with pytest.raises(ValueError, match=r"not the YOLO layout N x \(5 \+ classes\)"):
        create_detector(Yolov5OnnxDetectorConfig(model=model))
    with pytest.raises(ValueError, match="takes a fixed 640x640 input"):
        create_detector(Yolov8OnnxDetectorConfig(model=model, input_size=320))
    square = tiny_model(tmp_path / "square.onnx", yolov8[:, :, :84].copy(), [1, 3, 640, 640])
    with pytest.raises(ValueError, match="not the YOLO layout"):
        create_detector(Yolov8OnnxDetectorConfig(model=square))


def write_config(tmp_path: Path, detector: dict[str, Any]) -> Path:
    config = {
        "cameras": [{"id": "gate", "site": "hq", "url": "rtsp://127.0.0.1:8554/gate"}],
        "detector": detector,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_chooses_the_plugin_by_type_with_a_model_next_to_it(tmp_path: Path) -> None:
    tiny_model(tmp_path / "yolo11n.onnx", yolov8_rows().T[np.newaxis].copy(), [1, 3, 640, 640])
    detector = {"type": "yolov8_onnx", "model": "yolo11n.onnx", "keep": ["person", "car"]}
    config = load_config(write_config(tmp_path, detector))
    assert isinstance(config.detector, Yolov8OnnxDetectorConfig)
    assert summary(create_detector(config.detector).detect(PICTURE)) == EXPECTED[:2]


@pytest.mark.parametrize(
    ("detector", "expected"),
    [
        ({"type": "yolov8_onnx", "iou": 2}, "detector.iou: Input should be less than or equal"),
        ({"type": "yolov5_onnx", "labelz": ["a"]}, "detector.labelz: unknown key"),
        ({"type": "yolov8_onnx", "keep": ["persn"]}, "detector.keep: not among the model's"),
        ({"type": "yolov8_onnx", "input_size": 600}, "detector.input_size: Input should be a"),
        ({"type": "ssd_onnx", "threads": 0}, "detector.threads: Input should be greater"),
        ({"type": "yolov9_onnx"}, "detector: Input tag 'yolov9_onnx' found using 'type'"),
    ],
    ids=["iou", "unknown-key", "keep", "input-size", "threads", "type"],
)
def test_config_errors_name_the_detector_key(
    tmp_path: Path, detector: dict[str, Any], expected: str
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, {"model": "model.onnx", **detector}))
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value
