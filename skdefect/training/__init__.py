"""skorch nets and the batch pipeline (no scikit-learn here)."""

from .base import DefectNetBase
from .data import BatchIterator, ImageBatchSource
from .two_stage import TwoStageNet

__all__ = ["BatchIterator", "DefectNetBase", "ImageBatchSource", "TwoStageNet"]
