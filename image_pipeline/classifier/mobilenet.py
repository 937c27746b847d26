"""MobileNetV2 (ImageNet, 1000 classes) as an ONNX graph, built from torchvision's weights.

The graph is written with `onnx.helper` from the state dict, torchvision's
`mobilenet_v2` layer by layer: a 3x3 stem, 17 inverted residual blocks, a 1x1 conv to
1280 channels, global average pooling and the linear classifier, then a softmax.
Batch norms are folded into the convolutions before them (inference only), so the
graph is convolutions, clips (ReLU6) and adds. No torch at build time or run time.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from image_pipeline.classifier import INPUT, OUTPUT, SIDE

OPSET = 17
# The IR of opset 17 (ONNX 1.12): onnx writes its newest, which onnxruntime may not read yet.
IR_VERSION = 8
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default
# (expansion, output channels, repeats, stride of the first): torchvision's setting.
STEM_CHANNELS = 32
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def constant(self, value: np.ndarray, kind: str) -> str:
        name = self.name(kind)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: object) -> str:
        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, relu6: bool) -> str:
        """Conv2d (no bias) then BatchNorm2d, folded into one Conv; then ReLU6 if asked."""
        weight = self.weights[f"{conv}.weight"]
        gamma, beta = self.weights[f"{bn}.weight"], self.weights[f"{bn}.bias"]
        mean, var = self.weights[f"{bn}.running_mean"], self.weights[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var + BN_EPSILON)
        folded_weight = (weight * scale[:, None, None, None]).astype(np.float32)
        folded_bias = (beta - mean * scale).astype(np.float32)
        out_channels, in_per_group, kernel, _ = weight.shape
        groups = out_channels if in_per_group == 1 and kernel > 1 else 1  # depthwise
        pad = (kernel - 1) // 2
        y = self.node(
            "Conv",
            [x, self.constant(folded_weight, "w"), self.constant(folded_bias, "b")],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=groups,
        )
        if relu6:
            y = self.node("Clip", [y, self.low, self.high])
        return y

    def build(self) -> onnx.ModelProto:
        self.low = self.constant(np.array(0.0, np.float32), "zero")
        self.high = self.constant(np.array(6.0, np.float32), "six")
        x = self.conv_bn(INPUT, "features.0.0", "features.0.1", 2, relu6=True)
        channels, index = STEM_CHANNELS, 1
        for expansion, out_channels, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
            for repeat in range(repeats):
                stride = first_stride if repeat == 0 else 1
                prefix = f"features.{index}.conv"
                shortcut = x
                x = self.inverted_residual(x, prefix, expansion, stride)
                if stride == 1 and channels == out_channels:  # the shape is kept
                    x = self.node("Add", [shortcut, x])
                channels, index = out_channels, index + 1
        x = self.conv_bn(x, f"features.{index}.0", f"features.{index}.1", 1, relu6=True)
        x = self.node("GlobalAveragePool", [x])
        x = self.node("Flatten", [x], axis=1)
        weight, bias = self.weights["classifier.1.weight"], self.weights["classifier.1.bias"]
        logits = self.node(
            "Gemm", [x, self.constant(weight, "fc_w"), self.constant(bias, "fc_b")], transB=1
        )
        self.nodes.append(helper.make_node("Softmax", [logits], [OUTPUT], axis=1))
        graph = helper.make_graph(
            self.nodes,
            "mobilenet_v2",
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1000])],
            self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
        )
        onnx.checker.check_model(model)
        return model

    def inverted_residual(self, x: str, prefix: str, expansion: int, stride: int) -> str:
        """torchvision's InvertedResidual without its shortcut: [1x1 expand,] 3x3 depthwise,
        1x1 project (linear)."""
        layer = 0
        if expansion != 1:
            x = self.conv_bn(x, f"{prefix}.0.0", f"{prefix}.0.1", 1, relu6=True)
            layer = 1
        x = self.conv_bn(x, f"{prefix}.{layer}.0", f"{prefix}.{layer}.1", stride, relu6=True)
        return self.conv_bn(x, f"{prefix}.{layer + 1}", f"{prefix}.{layer + 2}", 1, relu6=False)


def build_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model of torchvision's MobileNetV2 with these weights (its state dict)."""
    return _Graph(weights).build()
