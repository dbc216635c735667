"""sklearn's common estimator checks on a tiny flattened-input configuration.

skdefect's detectors read each row of a 2-D ``X`` as an image of the estimator's
``image_shape``. Most common checks feed an arbitrary number of features (1-10), which
no image shape matches; those checks are refused with a clear ValueError naming X, so
they are expected failures. The rest run for real. Each expected failure has its reason.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector

SHAPE = (
    "feeds X with a few arbitrary features per row; rows are images of image_shape=(8, 8), so X of "
    "another width is refused with a ValueError naming X, before the check can test its property"
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
    "check_complex_data": "complex X is refused with a TypeError naming X and its dtype, not sklearn's wording",
    "check_estimators_empty_data_messages": "empty X is refused with skdefect's message (names X, the "
    "expected image_shape and the received shape), not sklearn's wording",
    "check_fit2d_1sample": "X of another width than image_shape is refused first (see the shape reason)",
    "check_fit2d_1feature": "X of another width than image_shape is refused first (see the shape reason)",
    "check_classifiers_one_label": "a detector is refused a single class (two-stage: the decision stage "
    "needs both; the GAN: only anomalies) or X of another width is refused first",
    "check_classifiers_regression_target": "a continuous y is refused with 'y must be binary with 0 = normal "
    "and 1 = defective', not sklearn's 'Unknown label type'",
    "check_classifier_not_supporting_multiclass": "a multiclass y is refused with skdefect's binary-label "
    "message, not the phrase this check looks for",
    "check_requires_y_none": "the refusal names masks / X shape, not the phrase this check looks for",
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
