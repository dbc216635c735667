"""Plain PyTorch networks of skdefect (no scikit-learn / skorch here).

* :mod:`skdefect.nn.wang2022` — the concentrated-loss paper's two-stage network (Table 1):
  :class:`Wang2022SegmentationNet`, :class:`Wang2022DecisionNet`, :class:`Wang2022TwoStage`.
* :mod:`skdefect.nn.segdec` — Božič et al. 2021 :class:`SegDecNet` with :class:`FeatureNorm`
  and :class:`GradientMultiply`.
* :mod:`skdefect.nn.gan` — the dual-discriminator GAN's :class:`UNetGenerator` and
  :class:`PatchDiscriminator`.
* Utilities: :func:`count_parameters`, :func:`parameter_table`, :func:`flops_per_image`.

Every network takes ``width`` (channel multiplier; 1.0 is the paper's network) and is
initialised Kaiming-normal (biases 0, norm affine (1, 0)).
"""

from ._common import count_parameters, parameter_table
from ._flops import flops_per_image
from .gan import PatchDiscriminator, UNetGenerator
from .segdec import FeatureNorm, GradientMultiply, SegDecNet, gradient_multiply
from .wang2022 import Wang2022DecisionNet, Wang2022SegmentationNet, Wang2022TwoStage

__all__ = [
    "Wang2022SegmentationNet",
    "Wang2022DecisionNet",
    "Wang2022TwoStage",
    "SegDecNet",
    "FeatureNorm",
    "GradientMultiply",
    "gradient_multiply",
    "UNetGenerator",
    "PatchDiscriminator",
    "count_parameters",
    "parameter_table",
    "flops_per_image",
]
