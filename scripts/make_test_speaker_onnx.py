#!/usr/bin/env python3
"""Writes a small ONNX speaker model with WeSpeaker's I/O signature, for
crates/vttiro-diarize/tests/onnx_encoder.rs.

    make_test_speaker_onnx.py MODEL.onnx WEIGHTS.json [BATCH]

Input "feats" float32 [B, T, 80] (B and T symbolic; B fixed to BATCH when given, as some
exports have it), output "embs" float32 [B, 256]:
a frame-wise layer (80 -> 64, ReLU), the mean over time (statistics pooling, as the real
models end), then a linear map to 256. The ReLU matters: after mean normalisation a plain
mean over time of the features is zero, so the embedding would not depend on the audio.
Weights come from a fixed seed and are also written to WEIGHTS.json, so the test can
compute the same embedding itself and check what tract returns.

Needs the PyPI packages onnx and numpy (the test pins their versions).
"""

import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BINS, HIDDEN, DIM = 80, 64, 256
SEED = 20240611


def main(model_path: str, weights_path: str, batch: "int | str" = "B") -> None:
    rng = np.random.default_rng(SEED)
    # Scaled so that hidden units are neither all dead nor all saturated on mean-normalised
    # log-mel input (values of a few units).
    w1 = (rng.standard_normal((BINS, HIDDEN)) / np.sqrt(BINS)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, DIM)) / np.sqrt(HIDDEN)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(DIM)).astype(np.float32)

    nodes = [
        helper.make_node("MatMul", ["feats", "w1"], ["h_lin"]),
        helper.make_node("Add", ["h_lin", "b1"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w2"], ["e_lin"]),
        helper.make_node("Add", ["e_lin", "b2"], ["embs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "vttiro_test_speaker",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, [batch, "T", BINS])],
        [helper.make_tensor_value_info("embs", TensorProto.FLOAT, [batch, DIM])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    # Opset 17 keeps ReduceMean's axes an attribute; IR 8 is what opset 17 shipped with,
    # the version WeSpeaker's own exports are close to.
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="vttiro-tests",
        ir_version=8,
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, model_path)

    def listed(a: np.ndarray) -> list:
        # float32 -> Python float is exact, and so is the JSON round trip of a double.
        return [float(x) for x in a.reshape(-1)]

    with open(weights_path, "w") as f:
        json.dump(
            {
                "bins": BINS,
                "hidden": HIDDEN,
                "dim": DIM,
                "w1": listed(w1),
                "b1": listed(b1),
                "w2": listed(w2),
                "b2": listed(b2),
            },
            f,
        )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(*sys.argv[1:3], *(int(b) for b in sys.argv[3:]))
