"""skdefect-extra-losses: a third-party skdefect plugin package.

Contributes, through the ``skdefect`` entry point (see :mod:`.plugin`):

* losses ``"tversky"`` (Salehi et al. 2017), ``"focal_tversky"`` (Abraham & Khan
  2019) and ``"lovasz_hinge"`` (Berman et al. 2018), in :mod:`.losses`;
* the sampler ``"class_weighted"``, in :mod:`.sampling`;
* the two-stage backbone ``"small_unet"``, in :mod:`.nn`.

After ``pip install skdefect-extra-losses`` the names work anywhere skdefect takes
a plugin name, e.g. ``ConcentratedTwoStageDetector(loss="tversky",
backbone="small_unet", sampler="class_weighted")``.
"""

from .losses import focal_tversky_loss, lovasz_hinge_loss, tversky_index, tversky_loss
from .nn import SmallUNetDecision, SmallUNetSegmentation, SmallUNetTwoStage
from .sampling import ClassWeightedSampler

__version__ = "0.1.0"

__all__ = [
    "tversky_index",
    "tversky_loss",
    "focal_tversky_loss",
    "lovasz_hinge_loss",
    "ClassWeightedSampler",
    "SmallUNetSegmentation",
    "SmallUNetDecision",
    "SmallUNetTwoStage",
]
