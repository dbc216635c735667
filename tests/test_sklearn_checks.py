"""sklearn's common estimator checks on a tiny flattened-input configuration.

skdefect's detectors read each row of a 2-D ``X`` as an image of the estimator's ``image_shape`` with float
values in [0, 1] (or integers 0-255). Most common checks feed rows of 1-10 arbitrary features, most of them
with values far outside [0, 1] (``make_blobs``, ``normal(loc=100)``): no image shape matches them, and float
images outside [0, 1] are refused on purpose (0-255 floats would be trained on as if 255 times brighter). Those
checks are expected failures, each with its reason; ``test_sklearn_properties.py`` checks each one's property
(fit returns self and leaves the parameters alone, idempotence, state unchanged by prediction, order and
subset invariance, pickling, array layouts, n_features_in_, proba consistency, pipelines) on images. The
rest, error wording included, run for real.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector

SHAPE = (
    "feeds rows of a few arbitrary features (most checks with values outside [0, 1]); rows are images of "
    "image_shape=(8, 8) with floats in [0, 1], so X is refused with a ValueError naming X before the check "
    "can test its property (tested on images in test_sklearn_properties.py)"
)

_SHAPE_CHECKS = [
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array", "check_classifiers_classes",
    "check_classifiers_train", "check_supervised_y_2d", "check_decision_proba_consistency",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_dict_unchanged",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d",
]

EXPECTED_FAILURES = {
    **dict.fromkeys(_SHAPE_CHECKS, SHAPE),
    "check_classifiers_one_label": "X of another width than image_shape is refused before y's single class "
    "(which both detectors refuse: the two-stage's decision stage needs both classes, the GAN anomalies alone)",
}


def _expected(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [
        ConcentratedTwoStageDetector(image_shape=(8, 8), width=0.125, seg_epochs=1, dec_epochs=1, batch_size=16,
                                     device="cpu", random_state=0),
        DualDiscriminatorGANDetector(image_shape=(8, 8), image_size=32, width=0.25, epochs=1, batch_size=16,
                                     device="cpu", random_state=0, patch_size=8, patch_stride=8, top_n=2),
    ],
    expected_failed_checks=_expected,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)
